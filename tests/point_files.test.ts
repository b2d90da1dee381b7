// Point-cloud datasets on disk (data/point_files.ts): format detection of ScanObjectNN / ModelNet40
// (h5 and txt) directories, loading splits, and the reference's resampling (FPS pool → random subset →
// scale-and-translate in training, FPS in test, voting views).

import { Rng } from "../compiler/core/random.ts";
import type { PointSet } from "../data/point_data.ts";
import {
  detectPointFiles,
  farthestPoints,
  hasPointFiles,
  loadPointFiles,
  poolPoints,
  resampledPointSamples,
} from "../data/point_files.ts";
import { assert, assertRejectsMsg, test } from "./testing.ts";
import { randomClouds, writePointH5, writeScanObjectNN } from "./point_fixtures.ts";

test("detectPointFiles: ScanObjectNN variants, ModelNet40 h5 (list or glob) and txt; others undefined", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/main_split`);
    await writeScanObjectNN(`${dir}/main_split`, 2, 8);
    await assertRejectsMsg(
      () => detectPointFiles(`${dir}/main_split`),
      "several ScanObjectNN variants",
      "--data",
    );
    const hard =
      (await detectPointFiles(`${dir}/main_split/training_objectdataset_augmentedrot_scale75.h5`))!;
    assert.equal(hard.what, "ScanObjectNN hardest");
    assert.deepEqual(hard.test, [`${dir}/main_split/test_objectdataset_augmentedrot_scale75.h5`]);
    assert.equal(hard.classes, 15);
    await Deno.mkdir(`${dir}/main_split_nobg`);
    const c = randomClouds(2, 8, 15, 3);
    await writePointH5(`${dir}/main_split_nobg/training_objectdataset.h5`, c.data, [2, 8, 3], c.labels);
    assert.equal((await detectPointFiles(`${dir}/main_split_nobg`))!.what, "ScanObjectNN objectonly");
    await assertRejectsMsg(() => detectPointFiles(`${dir}/x.h5`), "training_objectdataset");

    // ModelNet40 h5: train_files.txt lists paths relative to the original archive's parent
    const mn = `${dir}/modelnet40_ply_hdf5_2048`;
    await Deno.mkdir(mn);
    for (const f of ["ply_data_train0.h5", "ply_data_train1.h5", "ply_data_test0.h5"]) {
      const r = randomClouds(3, 8, 40, f.length);
      await writePointH5(`${mn}/${f}`, r.data, [3, 8, 3], r.labels);
    }
    const glob = (await detectPointFiles(mn))!;
    assert.deepEqual(glob.train, [`${mn}/ply_data_train0.h5`, `${mn}/ply_data_train1.h5`]);
    await Deno.writeTextFile(`${mn}/train_files.txt`, "data/modelnet40_ply_hdf5_2048/ply_data_train1.h5\n");
    await Deno.writeTextFile(`${mn}/test_files.txt`, "data/modelnet40_ply_hdf5_2048/ply_data_test0.h5\n");
    const listed = (await detectPointFiles(mn))!;
    assert.equal(listed.kind, "modelnet40-h5");
    assert.deepEqual(listed.train, [`${mn}/ply_data_train1.h5`]);
    const both = await loadPointFiles(glob, "train", 0);
    assert.equal(both.n, 6);
    assert.equal(both.P, 8);

    await Deno.mkdir(`${dir}/txt`);
    await Deno.writeTextFile(`${dir}/txt/modelnet40_shape_names.txt`, "airplane\n");
    assert.equal((await detectPointFiles(`${dir}/txt`))!.kind, "modelnet40-txt");
    assert.ok(hasPointFiles(`${dir}/txt`) && hasPointFiles(mn) && !hasPointFiles(`${dir}/none`));
    assert.equal(await detectPointFiles(`${dir}/none`), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("farthestPoints: pointnet2's order (from the first point, then the farthest, first on ties)", () => {
  // points on a line: 0, 1, 2, 10, 4
  const xs = [0, 1, 2, 10, 4];
  const cloud = Float32Array.from(xs.flatMap((x) => [x, 0, 0]));
  assert.deepEqual(Array.from(farthestPoints(cloud, 5, 4)), [0, 3, 4, 2]);
  // visiting order starts elsewhere (the training shuffle)
  assert.deepEqual(Array.from(farthestPoints(cloud, 5, 2, 0, Int32Array.from([2, 0, 1, 3, 4]))), [2, 3]);
  // the kernel's quirk: points near the origin are never picked after the first
  const near = Float32Array.from([1, 0, 0, 0.01, 0, 0, -0.5, 0, 0]);
  assert.deepEqual(Array.from(farthestPoints(near, 3, 3)), [0, 2, 0]);
  assert.equal(poolPoints(1024), 1200);
  assert.equal(poolPoints(2048), 2400);
  assert.equal(poolPoints(8192), 8192);
});

test("resampledPointSamples: train = random subset of an FPS pool + scale/translate; test = FPS; votes", () => {
  const P = 20, M = 8, n = 3;
  const { data, labels } = randomClouds(n, P, 2, 9);
  const set: PointSet = { clouds: data, labels, n, P };
  const pool = poolPoints(M); // 9
  const cloudPts = (c: number) =>
    new Set(Array.from({ length: P }, (_, k) => data.subarray((c * P + k) * 3, (c * P + k) * 3 + 3).join()));

  const test_ = resampledPointSamples(set, { points: M, train: false });
  const out = new Float32Array(M * 3);
  test_.write(1, out, 0);
  const fps = farthestPoints(data, P, M, P * 3);
  assert.deepEqual(
    Array.from(out),
    Array.from(fps).flatMap((k) => Array.from(data.subarray((P + k) * 3, (P + k) * 3 + 3))),
  );

  // training: same rng state → same sample; the points before augmentation are distinct cloud points
  const train = resampledPointSamples(set, { points: M, train: true });
  const a = new Float32Array(M * 3), b = new Float32Array(M * 3);
  train.write(2, a, 0, new Rng(5));
  train.write(2, b, 0, new Rng(5));
  assert.deepEqual(a, b);
  const c = new Float32Array(M * 3);
  train.write(2, c, 0, new Rng(6));
  assert.notDeepEqual(a, c);
  // undo scale-and-translate: the rng's last 6 draws of the sample (after P shuffle + M choices)
  const r = new Rng(5);
  for (let k = 0; k < P + M; k++) r.next();
  const s = [0, 1, 2].map(() => 2 / 3 + (3 / 2 - 2 / 3) * r.next());
  const t = [0, 1, 2].map(() => 0.2 * (2 * r.next() - 1));
  const pts = cloudPts(2);
  const found = new Set<string>();
  for (let i = 0; i < M; i++) {
    const p = [0, 1, 2].map((d) => Math.fround((a[3 * i + d] - t[d]) / s[d]));
    const key = [...pts].find((q) => q.split(",").every((v, d) => Math.abs(Number(v) - p[d]) < 1e-5));
    assert.ok(key, `training point ${i} is not a point of the cloud`);
    found.add(key!);
  }
  assert.equal(found.size, M, "training points repeat");
  assert.ok(pool < P);

  // votes: cloud-major views, labels repeated, each view a fixed draw
  const votes = resampledPointSamples(set, { points: M, train: false, votes: 4, seed: 1 });
  assert.equal(votes.n, n * 4);
  assert.equal(votes.views, 4);
  assert.deepEqual(Array.from(votes.labels), [0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]);
  const v1 = new Float32Array(M * 3), v2 = new Float32Array(M * 3);
  votes.write(5, v1, 0);
  votes.write(5, v2, 0);
  assert.deepEqual(v1, v2);
  votes.write(6, v2, 0);
  assert.notDeepEqual(v1, v2);
  assert.throws(() => resampledPointSamples(set, { points: 32, train: true }), /fewer than the model's 32/);
});
