#!/usr/bin/env bash
# foliar on a real GPU, in one prepared run (scripts/gpu/README.md): the adapter's probe, the WebGPU
# kernel tests (every matmul variant forced, randomized WebGPU-vs-CPU comparisons), the golden cases
# on WebGPU, and the benchmarks with PyTorch on the same GPU as a peer. Each step has its own time
# limit, so one that hangs costs only its share. Everything lands in $OUT (default out/gpu), packed
# as one tarball besides the log.
#   bash scripts/gpu/check.sh [steps: probe,tests,golden,bench] 
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/out/gpu}; mkdir -p "$OUT/check"
steps=${1:-probe,tests,golden,bench}
log="$OUT/check/log.txt"
eval "$(bash scripts/gpu/setup.sh)"
export FOLIAR_REQUIRE_WEBGPU=1 FOLIAR_REQUIRE_SHARED=1 FOLIAR_TORCH_DEVICE=${FOLIAR_TORCH_DEVICE:-cuda}
run() { local secs=$1; shift; echo "== $(date -u +%T) $* (limit ${secs}s)" | tee -a "$log"; local t0=$SECONDS
  timeout -k 5 "$secs" "$@" >>"$log" 2>&1; local rc=$?; echo "== rc $rc after $((SECONDS - t0))s" | tee -a "$log"; }
tsx=(node --conditions=foliar-source --import tsx)
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv >>"$log" 2>&1
case ,$steps, in *,probe,*) run 60 node scripts/gpu/probe.mjs "$OUT/check/probe.json" ;; esac
case ,$steps, in *,tests,*)
  for t in matmul-variants matmul.test conv attention norm elementwise reduce nn-ops pool half optim-kernels; do
    run 90 node scripts/test.mjs "test/tensor/$t" --no-golden
  done ;; esac
case ,$steps, in *,golden,*) run 120 "${tsx[@]}" scripts/golden.ts shared/golden --backend webgpu ;; esac
case ,$steps, in *,bench,*)
  run 240 "${tsx[@]}" bench/run.ts --quick --filter matmul,conv,attention,resnet,profile
  cp bench/results/latest-*.md bench/results/*.json "$OUT/check/" 2>/dev/null ;; esac
tar -czf "$OUT/check.tgz" -C "$OUT" check && echo "packed $OUT/check.tgz"
