#!/usr/bin/env bash
# foliar on a real GPU in one prepared run (docs/gpu.md), within 10 minutes on an NVIDIA machine (Dawn
# over Vulkan): the adapter's probe, the WebGPU kernel tests (every matmul variant forced, randomized
# WebGPU-vs-CPU comparisons), the golden cases on WebGPU, the kernel benchmarks with PyTorch on the same
# GPU as a peer (FOLIAR_TORCH_DEVICE=cuda where torch sees CUDA), and Stable Diffusion 1.5 at full size
# (random weights: load, a 512² image with 2 DDIM steps, VAE encode + decode at 512², DreamBooth steps
# with LoRA and full fine-tuning, gradient checkpointing), then one summary table. Each step has its own
# time limit, so one that hangs costs only its share. Output: $OUT (default out/gpu), also packed as
# check.tgz.
#   bash scripts/gpu/check.sh [--small] [steps, default probe,tests,golden,bench,sd15]
# --small: SD 1.5's layout at a fifth of the widths (the sd15-small preset) and the quick benchmarks:
# what a 2-core machine on lavapipe runs (that is how this script is tested without a GPU). The sd15 step
# then runs with the binding limit lowered to 16 MiB (FOLIAR_MAX_BINDING_BYTES), so the small model takes
# the split paths the full size takes on a 128 MiB adapter: the token embedding in row shards, the VAE tiled.
set -u
cd "$(dirname "$0")/../.."
small=0; steps=probe,tests,golden,bench,sd15
for a in "$@"; do case $a in --small) small=1 ;; *) steps=$a ;; esac; done
OUT=${OUT:-$PWD/out/gpu}; mkdir -p "$OUT/check"
log="$OUT/check/log.txt"; : > "$log"; touch "$OUT/check/.start"
eval "$(bash scripts/gpu/setup.sh)"
export FOLIAR_REQUIRE_WEBGPU=1 FOLIAR_REQUIRE_SHARED=1
if [ -z "${FOLIAR_TORCH_DEVICE:-}" ] && python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then export FOLIAR_TORCH_DEVICE=cuda; fi
[ $small = 1 ] && export FOLIAR_SD15=small
quick=$([ $small = 1 ] && echo --quick)
run() { local secs=$1; shift; echo "== $(date -u +%T) $* (limit ${secs}s)" | tee -a "$log"; local t0=$SECONDS
  timeout -k 5 "$secs" "$@" >>"$log" 2>&1; local rc=$?; echo "== rc $rc after $((SECONDS - t0))s" | tee -a "$log"; }
tsx=(node --conditions=foliar-source --import tsx)
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >>"$log" 2>&1
case ,$steps, in *,probe,*) run 60 node scripts/gpu/probe.mjs "$OUT/check/probe.json" ;; esac
case ,$steps, in *,tests,*)
  for t in matmul-variants matmul.test conv attention norm elementwise reduce nn-ops pool half optim-kernels binding-split f16; do
    run 90 node scripts/test.mjs "test/tensor/$t" --no-golden
  done ;; esac
case ,$steps, in *,golden,*) run 120 "${tsx[@]}" scripts/golden.ts "$FOLIAR_SHARED/golden" --backend webgpu ;; esac
# small (lavapipe): the UNet suite's 9.8M-parameter case alone takes minutes there
case ,$steps, in *,bench,*) if [ $small = 1 ]; then run 900 "${tsx[@]}" bench/run.ts --quick --filter matmul,conv,attention,resnet,profile; else run 240 "${tsx[@]}" bench/run.ts --quick --filter matmul,conv,attention,resnet,unet,profile; fi ;; esac
case ,$steps, in *,sd15,*)
  if [ $small = 1 ]; then FOLIAR_MAX_BINDING_BYTES=${FOLIAR_MAX_BINDING_BYTES:-16777216} run 1500 "${tsx[@]}" bench/run.ts $quick --no-peers --filter sd15 --tag small
  else run 300 "${tsx[@]}" bench/run.ts --no-peers --filter sd15; fi ;; esac
find bench/results -name 'latest-*.md' -newer "$OUT/check/.start" -exec cp {} "$OUT/check/" \;
# one summary: test and golden counts, then every benchmark row of this run
{
  echo "# foliar GPU check ($(date -u +%F), $([ $small = 1 ] && echo small || echo full) sizes)"
  echo; echo "| step | result |"; echo "| --- | --- |"
  grep -E "^(ok  |FAIL) test/" "$log" | sed -E 's/^(ok  |FAIL) (test\/[^:]+): (.*)$/| \2 | \1 \3 |/'
  grep -E "^golden: " "$log" | sed -E 's/^(.*)$/| golden cases on WebGPU | \1 |/'
  grep -E "^== rc [1-9]" "$log" | sed -E 's/^== (.*)$/| a step failed | \1 (log.txt) |/'
  # the benchmark tables of this run, as bench/run.ts wrote them (adapter, peaks, rows)
  for f in "$OUT"/check/latest-*.md; do [ -f "$f" ] && { echo; sed -n '3,$p' "$f"; }; done
} > "$OUT/check/summary.md"
cat "$OUT/check/summary.md"
tar -czf "$OUT/check.tgz" -C "$OUT" check && echo "packed $OUT/check.tgz"
