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
for f in .device/debs/*.deb; do dpkg -x "$f" /; done
ldconfig
mkdir -p /tmp/deno-bin
python3 -c "import lzma,shutil;shutil.copyfileobj(lzma.open('.device/deno.xz'),open('/tmp/deno-bin/deno','wb'))"
chmod +x /tmp/deno-bin/deno
tar -xJf .device/dd.tar.xz -C /tmp
export PATH=/tmp/deno-bin:$PATH HOME=${HOME:-/tmp} DENO_DIR=/tmp/deno-dir DENO_NO_UPDATE_CHECK=1 XDG_RUNTIME_DIR=/tmp/xdg
if [[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
mkdir -p /tmp/xdg && chmod 700 /tmp/xdg
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | sed 's/^/gpu: /' | tee "$OUT/bench.log"
nproc | sed 's/^/cores: /' | tee -a "$OUT/bench.log"
python3 -c "import json;c=json.load(open('deno.json'));json.dump({k:c[k] for k in ('imports','compilerOptions') if k in c},open('/tmp/deno.json','w'))"
timeout 120 python3 .device/torch_ref.py > "$OUT/torch.log" 2>&1
timeout 240 deno run --no-lock --config /tmp/deno.json --cached-only -A examples/bench.ts --gpu-suite 2>&1 |
  grep -v XDG_RUNTIME | tee -a "$OUT/bench.log"
