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
# The VAE steps must fit phase A's budget: a candidate stopped by its deadline writes a checkpoint and
# measures no gate. Measured on an H200 (batch 16, 64 px): the last candidate running alone ~23 steps/s;
# two f2 candidates side by side ~6 steps/s each; four (two with the perceptual term) 2-3 steps/s each.
# PHASE=A or PHASE=B runs one phase (two calls on a warm machine: $SWEEP stays); the default runs both.
# PROFILE (default gpu64) and BASE_STEPS (default: from the time left) override, e.g. for a dry run on a
# CPU: PROFILE=smoke BASE_STEPS=8 bash scripts/gpu/generator-sweep.sh 300 6
# ONLY="f2 f2-perc" runs only those candidates; SWEEP (default runs/sweep, relative to the repository)
# is the run folder, e.g. SWEEP=runs/sweep-dry for a dry run that leaves an earlier sweep's record alone.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/out/gpu}; mkdir -p "$OUT"
export SWEEP=${SWEEP:-runs/sweep}
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
  tar -czf "$OUT/sweep.tgz" --exclude='checkpoints' --exclude='class_images' "$SWEEP" 2>/dev/null
  if [ -d "$OUT/procedural-generator" ]; then tar -czf "$OUT/generator.tgz" -C "$OUT" procedural-generator && rm -rf "$OUT/procedural-generator"; fi
  ls -la "$OUT"
}
trap pack EXIT

# *-perc: the perceptual term through a ResNet18 trained on the pretraining pool only (examples/study/pretrain.ts)
declare -A CAND=(
  [lat8]='{}'
  [lat16-grad]='{"latentChannels":16,"gradientWeight":1}'
  [f2]='{"blockOutChannels":[16,32],"latentChannels":4}'
  [f4-perc]='{"perceptualWeight":1}'
  [f2-perc]='{"blockOutChannels":[16,32],"latentChannels":4,"perceptualWeight":1}'
)
# ONLY="f2 f2-perc" keeps those candidates (a shorter device run)
if [ -n "${ONLY:-}" ]; then
  for n in "${!CAND[@]}"; do [[ " $ONLY " == *" $n "* ]] || unset "CAND[$n]"; done
  [ "${#CAND[@]}" -gt 0 ] || { echo "ONLY=$ONLY names no candidate" >&2; exit 2; }
fi
if [ "${PHASE:-AB}" != B ]; then
# the gate classifier and the perceptual term's pool classifier once (a one-step VAE with the term
# trains the latter), so the candidates do not train them side by side (each run folder links them)
mkdir -p "$SWEEP"
pg --out "$SWEEP/classifier" --stop-after vae --gates --vae '{"steps":1,"perceptualWeight":1}' > "$OUT/classifier.log" 2>&1
for n in "${!CAND[@]}"; do
  mkdir -p "$SWEEP/$n"
  ln -sfn ../classifier/seed-0 "$SWEEP/$n/seed-0"
  ln -sfn ../classifier/pool-classifier "$SWEEP/$n/pool-classifier"
done
echo "phase A at $((SECONDS - t0)) s: ${!CAND[*]}, $vsteps VAE steps each" | tee "$OUT/sweep.log"
budgetA=${BUDGET_A:-$(( $(left) * 45 / 100 ))}
for n in "${!CAND[@]}"; do
  v=$(node -e "console.log(JSON.stringify({...JSON.parse(process.argv[1]), steps: +process.argv[2]}))" "${CAND[$n]}" "$vsteps")
  pg --out "$SWEEP/$n" --stop-after vae --gates --vae "$v" --deadline "$budgetA" > "$OUT/vae-$n.log" 2>&1 &
done
wait
echo "phase A done at $((SECONDS - t0)) s" | tee -a "$OUT/sweep.log"
fi
[ "${PHASE:-AB}" = A ] && exit 0
best=$(node -e '
const fs = require("fs");
let best = null;
for (const n of process.argv.slice(1)) {
  const f = `${process.env.SWEEP}/${n}/generator-gates.json`;
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
pg --out "$SWEEP/$name" --gates --vae "$vae" --base "{\"steps\":$bsteps}" --deadline $(( $(left) - 20 )) \
  --export "$OUT/procedural-generator" > "$OUT/base-$name.log" 2>&1
echo "phase B rc $? at $((SECONDS - t0)) s" | tee -a "$OUT/sweep.log"
