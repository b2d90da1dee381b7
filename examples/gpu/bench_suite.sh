#!/usr/bin/env bash
# One GPU slot of benchmarks (issues 12 and 16): PyTorch's reference numbers (../shared/device/torch_ref.py,
# which pack.sh copies into .device/) and then our suite, `examples/bench.ts --gpu-suite` — matmul-8192,
# vit-s-llama7b-step, vit-llm-step, stream, and data-pipeline with 1, 2 and one worker per core (16 there) —
# in the same call on the same machine, as BENCHMARKS.md wants them.
#
# Prepare here: ../shared/device/pack.sh (fills .device/). Then, on the device:
#   run(command="bash examples/gpu/bench_suite.sh", timeout_s=420,
#       carry=[".device/deno.xz", ".device/dd.tar.xz", ".device/debs", ".device/torch_ref.py"])
# The logs come back as torch.log and bench.log.
set -o pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
source examples/gpu/setup.sh bench.log
nproc | sed 's/^/cores: /' | tee -a "$OUT/bench.log"
timeout 120 python3 .device/torch_ref.py > "$OUT/torch.log" 2>&1
timeout 240 deno run --no-lock --config /tmp/deno.json --cached-only -A examples/bench.ts --gpu-suite 2>&1 |
  grep -v XDG_RUNTIME | tee -a "$OUT/bench.log"
