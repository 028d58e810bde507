#!/usr/bin/env bash
# The study's generator on a real GPU (profile gpu64: quick's 64 px study with ten times the VAE's and
# the base model's training): pretraining, then seed 0's gate classifier, DreamBooth and gates. Stops
# after `limit` seconds (default 420) wherever it is; the stage cache means a later run continues.
# Packs the run folder (weights included, checkpoints left out) into $OUT/generator.tgz, which can be
# unpacked into runs/ on another machine to continue the study there with `--profile gpu64`.
#   bash scripts/gpu/generator.sh [limit-seconds]
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/out/gpu}; mkdir -p "$OUT"
limit=${1:-420}
eval "$(bash scripts/gpu/setup.sh)"
export FOLIAR_REQUIRE_WEBGPU=1
t0=$SECONDS
timeout -k 10 "$limit" node --conditions=foliar-source --import tsx examples/study.ts --profile gpu64 --out runs/gpu64 --seeds 0,1 \
  > "$OUT/generator-log.txt" 2>&1
echo "study rc $? after $((SECONDS - t0))s" | tee -a "$OUT/generator-log.txt"
tar -czf "$OUT/generator.tgz" --exclude='checkpoints' runs/gpu64 && ls -la "$OUT"
