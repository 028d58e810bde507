#!/usr/bin/env bash
# Issue 11 on a GPU, in one time-boxed run: which VAE recipe keeps the lesions, then a base model on it.
#   Phase A: VAE candidates trained side by side (one process each; the step is bound by dispatch on
#            the host, so processes share the GPU well), each measured by the VAE gate with seed 0's
#            gate classifier on seed 0's validation images (never test).
#   Phase B: the candidate with the smallest worst-class accuracy drop (then the highest PSNR) gets a
#            base model, as many steps as the time left allows, then the conditioning gate and the
#            export as an embedded generator ($OUT/procedural-generator).
# Everything (gates, grids, logs, the run folders without VAE checkpoints) is packed into $OUT.
#   bash scripts/gpu/generator-sweep.sh [limit-seconds] [vae-steps]
# PHASE=A or PHASE=B runs one phase (two calls on a warm machine: runs/sweep stays); the default runs both.
# PROFILE (default gpu64) and BASE_STEPS (default: from the time left) override, e.g. for a dry run on a
# CPU: PROFILE=smoke BASE_STEPS=8 bash scripts/gpu/generator-sweep.sh 300 6
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/out/gpu}; mkdir -p "$OUT"
limit=${1:-560}
vsteps=${2:-2000}
t0=$SECONDS
eval "$(bash scripts/gpu/setup.sh)"
export FOLIAR_REQUIRE_WEBGPU=1
pg() { node --conditions=foliar-source --import tsx examples/pretrain-generator.ts --profile "${PROFILE:-gpu64}" "$@"; }
left() { echo $((limit - (SECONDS - t0))); }
# what comes back from a device is size-limited: gates, grids, logs and the exported generator (one
# archive); checkpoints stay behind (on a warm machine a later call resumes from them)
pack() {
  tar -czf "$OUT/sweep.tgz" --exclude='checkpoints' --exclude='class_images' runs/sweep 2>/dev/null
  if [ -d "$OUT/procedural-generator" ]; then tar -czf "$OUT/generator.tgz" -C "$OUT" procedural-generator && rm -rf "$OUT/procedural-generator"; fi
  ls -la "$OUT"
}
trap pack EXIT

declare -A CAND=(
  [lat8]='{}'
  [lat16-grad]='{"latentChannels":16,"gradientWeight":1}'
  [f2]='{"blockOutChannels":[16,32],"latentChannels":4}'
)
if [ "${PHASE:-AB}" != B ]; then
# the gate classifier once, so the candidates do not train it side by side (each run folder reuses it)
mkdir -p runs/sweep
pg --out runs/sweep/classifier --stop-after vae --gates --vae '{"steps":1}' > "$OUT/classifier.log" 2>&1
for n in "${!CAND[@]}"; do
  mkdir -p "runs/sweep/$n"
  ln -sfn ../classifier/seed-0 "runs/sweep/$n/seed-0"
done
echo "phase A at $((SECONDS - t0)) s: ${!CAND[*]}, $vsteps VAE steps each" | tee "$OUT/sweep.log"
budgetA=${BUDGET_A:-$(( $(left) * 45 / 100 ))}
for n in "${!CAND[@]}"; do
  v=$(node -e "console.log(JSON.stringify({...JSON.parse(process.argv[1]), steps: +process.argv[2]}))" "${CAND[$n]}" "$vsteps")
  pg --out "runs/sweep/$n" --stop-after vae --gates --vae "$v" --deadline "$budgetA" > "$OUT/vae-$n.log" 2>&1 &
done
wait
echo "phase A done at $((SECONDS - t0)) s" | tee -a "$OUT/sweep.log"
fi
[ "${PHASE:-AB}" = A ] && exit 0
best=$(node -e '
const fs = require("fs");
let best = null;
for (const n of process.argv.slice(1)) {
  const f = `runs/sweep/${n}/generator-gates.json`;
  if (!fs.existsSync(f)) { console.error(`${n}: no gate`); continue; }
  const g = JSON.parse(fs.readFileSync(f, "utf8"));
  const drops = g.gates.filter((e) => e.name.startsWith("recon_accuracy_drop.")).map((e) => e.value ?? 1);
  const worst = Math.max(...drops), psnr = g.gates.find((e) => e.name === "psnr").value;
  console.error(`${n}: worst drop ${worst.toFixed(3)}, psnr ${psnr.toFixed(2)}, vae ${JSON.stringify(g.vae)}`);
  if (!best || worst < best.worst - 1e-9 || (Math.abs(worst - best.worst) < 1e-9 && psnr > best.psnr)) best = { n, worst, psnr, vae: g.vae };
}
if (best) console.log(best.n + "\t" + JSON.stringify(best.vae));
' "${!CAND[@]}" 2>>"$OUT/sweep.log")
[ -n "$best" ] || { echo "no candidate finished its gate" | tee -a "$OUT/sweep.log"; exit 1; }
name=${best%%$'\t'*}; vae=${best#*$'\t'}
# base steps from the time left: ~0.16 s per step of batch 32 (H200, dispatch-bound), a minute kept for gates and export
bsteps=$(( ($(left) - 75) * 100 / 16 ))
[ "$bsteps" -gt 3000 ] && bsteps=3000
bsteps=${BASE_STEPS:-$bsteps}
echo "phase B at $((SECONDS - t0)) s: base on $name ($vae), $bsteps steps" | tee -a "$OUT/sweep.log"
[ "$bsteps" -ge "${MIN_BASE_STEPS:-200}" ] || { echo "too little time left for a base model" | tee -a "$OUT/sweep.log"; exit 1; }
pg --out "runs/sweep/$name" --gates --vae "$vae" --base "{\"steps\":$bsteps}" --deadline $(( $(left) - 20 )) \
  --export "$OUT/procedural-generator" > "$OUT/base-$name.log" 2>&1
echo "phase B rc $? at $((SECONDS - t0)) s" | tee -a "$OUT/sweep.log"
