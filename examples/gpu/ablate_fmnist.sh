#!/usr/bin/env bash
# One GPU slot of the paper's ablation on full Fashion-MNIST (issues 13 and 14), resumable across slots.
#
# Prepare here, in the project's root (once):
#   ../shared/device/pack.sh                                  # .device/: deno, Vulkan loader, npm cache
#   mkdir -p .data/fmnist-xz && for f in /usr/share/datasets/fashion-mnist/*.gz; do
#     zcat "$f" | xz -9e -T2 > ".data/fmnist-xz/$(basename "$f" .gz).xz"; done   # 26 MB
# Run on the device (one call, about 9 minutes; carry the finished cells of earlier slots as .data/ablate):
#   run(command="bash examples/gpu/ablate_fmnist.sh", timeout_s=600,
#       carry=[".device/deno.xz", ".device/dd.tar.xz", ".device/debs", ".data/fmnist-xz", ".data/ablate"])
# Afterwards copy the returned ablate/ folder over .data/ablate (the next slot skips what is finished) and,
# when every cell is there, the tables and figures into docs/results/.
#
# Grid: ViT tiny-28 (5.4M params), 5 epochs of 60k, batch 256, lr 2e-3, 100 warmup steps, 3 seeds; the
# frozen layer is --llm default (models/lm-default, pretrained on English text). Grid "last": arms none, frozen,
# random-frozen, random-trained, mlp, finetune with its last layer; grid "middle": arm frozen with layer 2 of 6.
# One process per arm runs its seeds in turn, all at once on the one GPU. Cells cut off by the time limit run
# again from scratch next time. With every cell of none / frozen / random-frozen seed 0 finished, the
# information-filtering analysis (500 test images) runs on those three checkpoints.
set -uo pipefail
MINUTES=${MINUTES:-7.5}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
# DEVICE_SETUP=0 skips the device setup and EXTRA adds flags (a smoke test on this machine:
#   DEVICE_SETUP=0 MINUTES=3 EXTRA="--model fmnist --steps 2 --train-limit 64 --eval-limit 64" bash ...).
if [[ ${DEVICE_SETUP:-1} == 1 ]]; then
  source examples/gpu/setup.sh log
else
  export XDG_RUNTIME_DIR=/tmp/xdg
  mkdir -p /tmp/xdg && chmod 700 /tmp/xdg
  python3 -c "import json;c=json.load(open('deno.json'));json.dump({k:c[k] for k in ('imports','compilerOptions') if k in c},open('/tmp/deno.json','w'))"
fi
DENO="deno run --no-lock --config /tmp/deno.json -A"
[[ ${DEVICE_SETUP:-1} == 1 ]] && DENO="$DENO --cached-only"

D=${TMPROOT:-/tmp}/fmnist
mkdir -p $D
for f in .data/fmnist-xz/*.xz; do xz -dc "$f" > "$D/$(basename "$f" .xz)"; done
A=${TMPROOT:-/tmp}/ablate
mkdir -p $A
[[ -d .data/ablate ]] && cp -r .data/ablate/. $A/
COMMON=(--data $D --model tiny-28 --epochs 5 --batch 256 --lr 2e-3 --warmup 100 --seeds 3 --llm default --quiet ${EXTRA:-})

start=$(date +%s)
for arm in none frozen random-frozen random-trained mlp finetune; do
  timeout "${MINUTES}m" $DENO examples/ablate.ts "${COMMON[@]}" --llm-layers last --arms $arm --out $A/last \
    > "$OUT/ablate-last-$arm.log" 2>&1 &
done
timeout "${MINUTES}m" $DENO examples/ablate.ts "${COMMON[@]}" --llm-layers 2 --arms frozen --out $A/middle \
  > "$OUT/ablate-middle-frozen.log" 2>&1 &
wait
echo "ablation processes ended after $(($(date +%s) - start)) s" | tee -a "$OUT/log"

$DENO examples/ablate.ts "${COMMON[@]}" --llm-layers last --arms none,frozen,random-frozen,random-trained,mlp,finetune \
  --out $A/last --table-only 2>&1 | tee -a "$OUT/log"
$DENO examples/ablate.ts "${COMMON[@]}" --llm-layers 2 --arms frozen --out $A/middle --table-only 2>&1 | tee -a "$OUT/log"

for arm in none frozen random-frozen; do
  if [[ -f $A/last/$arm-seed0/result.json ]]; then
    timeout 60 $DENO examples/analyze.ts --checkpoint $A/last/$arm-seed0 --data $D --limit 500 \
      --out "$OUT/analysis/$arm" 2>&1 | tail -n 20 | tee -a "$OUT/log"
  fi
done

# What comes back: every cell's result.json, metrics.jsonl and chart.svg (no weights), the tables, the logs.
for grid in last middle; do
  for cell in $A/$grid/*/; do
    [[ -d $cell ]] || continue
    dst="$OUT/ablate/$grid/$(basename "$cell")"
    mkdir -p "$dst"
    cp "$cell"/result.json "$cell"/metrics.jsonl "$cell"/chart.svg "$dst/" 2>/dev/null
  done
  cp $A/$grid/table.md $A/$grid/ablate.json "$OUT/ablate/$grid/" 2>/dev/null
done
ls -R "$OUT" | head -n 80
