// Runs fuzz cases [from, to) of one target and posts each start and outcome to the driver, which kills
// this worker when a case runs past the time limit.

import { Finding, TARGETS } from "./targets.ts";
import { mutate, Prng } from "./mutate.ts";

interface Job {
  target: string;
  seed: number;
  from: number;
  to: number;
  dir: string;
}

/** The Prng of case i of a target: independent of the other cases, so a case can be replayed alone. */
export function caseRng(seed: number, target: string, i: number): Prng {
  let h = seed >>> 0;
  for (const c of target) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193);
  return new Prng(Math.imul(h ^ (i + 1), 0x9e3779b1) ^ (i >>> 16));
}

const post = (m: unknown) => (self as unknown as Worker).postMessage(m);

(self as unknown as Worker).onmessage = async (ev: MessageEvent<Job>) => {
  const { target, seed, from, to, dir } = ev.data;
  const t = TARGETS.find((x) => x.name === target)!;
  const seedBytes = await t.seed();
  const path = `${dir}/${t.file}`;
  for (let i = from; i < to; i++) {
    const { bytes, how } = mutate(seedBytes, caseRng(seed, target, i));
    post({ type: "start", i, how });
    await Deno.writeFile(path, bytes);
    let outcome: string, msg = "";
    try {
      outcome = await t.check(path, bytes, seedBytes);
    } catch (e) {
      outcome = e instanceof Finding ? e.kind : "crash";
      msg = e instanceof Error ? e.message : String(e);
    }
    post({ type: "result", i, how, outcome, msg });
  }
  post({ type: "done" });
};
