import { loadH5wasm, readPointH5 } from "/work/main/data/point_data.ts";
const { h5, M } = await loadH5wasm();
const mem = "/mk.h5";
const f = new h5.File(mem, "w");
f.create_dataset({ name: "data", data: new Float32Array(36), shape: [3, 4, 3] });
f.create_dataset({ name: "label", data: new Int32Array(3), shape: [3] });
f.close();
const bytes = M.FS.readFile(mem);
M.FS.unlink(mem);
await Deno.writeFile("/tmp/h7/good.h5", bytes);
await Deno.writeFile("/tmp/h7/bad.h5", bytes.subarray(0, bytes.length - 100));
const N = Number(Deno.args[0] ?? 3000);
const t0 = performance.now();
let last = "";
for (let i = 0; i < N; i++) {
  try { await readPointH5("/tmp/h7/bad.h5"); } catch (e) { last = (e as Error).message; }
  if (i % 500 === 0) console.log(i, (performance.now() - t0).toFixed(0), last.slice(0, 120));
}
console.log("done", (performance.now() - t0).toFixed(0), last);
console.log((await readPointH5("/tmp/h7/good.h5")).n);
