import { loadH5wasm, readPointH5 } from "../../data/point_data.ts";
const { M } = await loadH5wasm();
const streams = () => (M.FS as any).streams.filter((s: unknown) => s).length;
console.log("streams before", streams(), Object.keys(M.FS as any).filter(k=>/stream/i.test(k)));
for (let i = 0; i < 200; i++) { try { await readPointH5("/tmp/h7/bad.h5"); } catch { /* */ } }
console.log("streams after 200", streams());
console.log((M.FS as any).readdir("/tmp"));
const m = M as any; console.log("HEAP", m.HEAP8?.length, typeof m.wasmExports, Object.keys(m).filter(k=>/stack|asm|wasm/i.test(k)));
