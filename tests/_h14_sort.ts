import { encodeIdxGz, loadFashionMnist } from "../data/fashion_mnist.ts";
import { exportFashionMnistPng } from "../data/export_fmnist_png.ts";
const SUBSET = new URL("../data/fashion-mnist-subset", import.meta.url).pathname, dir = "/tmp/h14/sidx";
for (const [split, prefix] of [["train", "train"], ["test", "t10k"]] as const) {
  const d = await loadFashionMnist(SUBSET, split);
  const order = [...Array(d.n).keys()].sort((a, b) => d.labels[a] - d.labels[b] || a - b);
  const img = new Uint8Array(d.n * 784);
  order.forEach((i, k) => img.set(d.images.subarray(i * 784, (i + 1) * 784), k * 784));
  await Deno.writeFile(`${dir}/${prefix}-images-idx3-ubyte.gz`, encodeIdxGz([d.n, 28, 28], img));
  await Deno.writeFile(`${dir}/${prefix}-labels-idx1-ubyte.gz`, encodeIdxGz([d.n], Uint8Array.from(order, (i) => d.labels[i])));
}
console.log(await exportFashionMnistPng(dir, "/tmp/h14/spng"));
