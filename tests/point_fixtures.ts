// Tiny point-cloud dataset files for the tests: HDF5 files as ScanObjectNN and ModelNet40 ship them.

import { Rng } from "../compiler/core/random.ts";
import { loadH5wasm } from "../data/point_data.ts";

let written = 0;

/** Writes an HDF5 file (datasets `data` [n, P, C] and `label` [n, 1]) with h5wasm. */
export async function writePointH5(path: string, data: Float32Array, shape: number[], labels: Int32Array) {
  const { h5, M } = await loadH5wasm();
  const mem = `/point_files_${++written}.h5`;
  const f = new h5.File(mem, "w");
  f.create_dataset({ name: "data", data, shape });
  f.create_dataset({ name: "label", data: labels, shape: [labels.length, 1] });
  f.close();
  await Deno.writeFile(path, M.FS.readFile(mem));
  M.FS.unlink(mem);
}

/** n random clouds of P points (coordinates in [-1, 1)) with labels i % classes. */
export function randomClouds(n: number, P: number, classes: number, seed: number) {
  const rng = new Rng(seed);
  const data = Float32Array.from({ length: n * P * 3 }, () => 2 * rng.next() - 1);
  const labels = Int32Array.from({ length: n }, (_, i) => i % classes);
  return { data, labels };
}

/** A ScanObjectNN main_split directory holding objectbg and hardest files. */
export async function writeScanObjectNN(dir: string, n: number, P: number): Promise<void> {
  for (const [i, name] of ["objectdataset", "objectdataset_augmentedrot_scale75"].entries()) {
    for (const [j, split] of ["training", "test"].entries()) {
      const c = randomClouds(n, P, 15, 10 * i + j + 1);
      await writePointH5(`${dir}/${split}_${name}.h5`, c.data, [n, P, 3], c.labels);
    }
  }
}
