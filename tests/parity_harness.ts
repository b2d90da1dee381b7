// Runs the parity tool as users run it (a subprocess with the documented flags) for the parity tests,
// which are split over several files so that `deno test --parallel` can spread them over the cores.

export const ROOT = new URL("../", import.meta.url).pathname;

export const VIT =
  "--model vit --img 28 --patch 7 --chans 1 --dim 32 --depth 2 --heads 2 --classes 10 --label-smoothing 0.1";
export const VIDEO =
  "--model video --frames 4 --tubelet 2 --img 28 --patch 7 --chans 1 --dim 32 --depth 2 --heads 2 --classes 10 --label-smoothing 0.1";
export const POINT =
  "--model point --points 64 --groups 8 --group-size 8 --encoder-dim 32 --dim 32 --depth 2 --heads 2 --classes 5 --label-smoothing 0.2";

/** Runs examples/parity.ts on a reference in tests/fixtures/parity; exit code, output and OUT's size. */
export async function parity(ref: string, llm: string, layers: string, extra: string[] = [], model = VIT) {
  const out = await Deno.makeTempFile({ suffix: ".safetensors" });
  const cmd = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}examples/parity.ts`,
      ...`--ref ${ROOT}tests/fixtures/parity/${ref} --out ${out} ${model} --lr 1e-3 --weight-decay 0.05`
        .split(" "),
      ...["--llm", llm, "--llm-layers", layers, ...extra],
    ],
    stdout: "piped",
    stderr: "piped",
  });
  const r = await cmd.output();
  const text = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
  const size = (await Deno.stat(out)).size;
  await Deno.remove(out);
  return { code: r.code, text, size };
}
