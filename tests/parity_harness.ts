// Runs the parity tool for the parity tests, which are split over several files so that
// `deno test --parallel` can spread them over the cores. `parity` runs it as users run it (a subprocess
// with the documented flags: the CLI's output and exit code); `parityInProcess` calls the same code
// (examples/parity.ts's runParity) in this process, so that the cases of a file share compiled kernels.

import { runParity } from "../examples/parity.ts";

export const ROOT = new URL("../", import.meta.url).pathname;

export const VIT =
  "--model vit --img 28 --patch 7 --chans 1 --dim 32 --depth 2 --heads 2 --classes 10 --label-smoothing 0.1";
export const VIDEO =
  "--model video --frames 4 --tubelet 2 --img 28 --patch 7 --chans 1 --dim 32 --depth 2 --heads 2 --classes 10 --label-smoothing 0.1";
export const POINT =
  "--model point --points 64 --groups 8 --group-size 8 --encoder-dim 32 --dim 32 --depth 2 --heads 2 --classes 5 --label-smoothing 0.2";

/** The tool's flags for a reference in tests/fixtures/parity, writing to OUT. */
function flags(out: string, ref: string, llm: string, layers: string, extra: string[], model: string) {
  return [
    ...`--ref ${ROOT}tests/fixtures/parity/${ref} --out ${out} ${model} --lr 1e-3 --weight-decay 0.05`
      .split(" "),
    ...["--llm", llm, "--llm-layers", layers, ...extra],
  ];
}

/** Runs examples/parity.ts as a subprocess on a reference; exit code, output and OUT's size. */
export async function parity(ref: string, llm: string, layers: string, extra: string[] = [], model = VIT) {
  const out = await Deno.makeTempFile({ suffix: ".safetensors" });
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}examples/parity.ts`, ...flags(out, ref, llm, layers, extra, model)],
    stdout: "piped",
    stderr: "piped",
  });
  const r = await cmd.output();
  const text = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
  const size = (await Deno.stat(out)).size;
  await Deno.remove(out);
  return { code: r.code, text, size };
}

/**
 * The same as `parity`, in this process: the lines it prints, and its exit code (an error it throws
 * counts as the CLI's uncaught error: exit 1, the message in the output).
 */
export async function parityInProcess(
  ref: string,
  llm: string,
  layers: string,
  extra: string[] = [],
  model = VIT,
) {
  const out = await Deno.makeTempFile({ suffix: ".safetensors" });
  const lines: string[] = [];
  const log = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
  let code;
  try {
    code = await runParity(flags(out, ref, llm, layers, extra, model), log);
  } catch (e) {
    code = 1;
    lines.push(`error: ${(e as Error).message}`);
  }
  const size = (await Deno.stat(out)).size;
  await Deno.remove(out);
  return { code, text: lines.join("\n"), size };
}
