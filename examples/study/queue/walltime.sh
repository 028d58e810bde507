#!/usr/bin/env bash
# Wall time of one study run, in process or through the job queue with N local workers, on a cold store.
#
#   bash examples/study/queue/walltime.sh <in-process|1|2|3|…> <base folder> [study options, e.g. --profile smoke]
#
# Writes under <base folder>/<mode>/: the run folder (the store; emptied first), study.log, worker-<k>.log,
# load.txt (/proc/loadavg every 5 s during the run) and summary.txt (wall time of the study command from
# launch to exit, uptime before and after, the mean and range of the 1-minute load average while it ran).
# With workers it starts its own redis-server on a free loopback port (no persistence) and the workers
# just before the study command; their start-up (WebGPU init) is inside the study's wall time as it would
# be in a real launch. The WebGPU tuning cache (~/.cache/foliar) is the machine's, as in any run.
set -euo pipefail
mode=${1:?mode: in-process or a number of workers}
base=${2:?base folder}
shift 2
root=$(cd "$(dirname "$0")/../../.." && pwd)
dir="$base/$mode"
store="$dir/store"
rm -rf "$dir"
mkdir -p "$dir"
cd "$root"
NODE=(node --conditions=foliar-source --import tsx)

pids=()
redis_pid=
cleanup() {
  [ -n "${sampler:-}" ] && kill "$sampler" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null || true
}
trap cleanup EXIT
trap "exit 130" INT TERM

queue_args=()
if [ "$mode" != in-process ]; then
  port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" > "$dir/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  queue_args=(--queue "redis://127.0.0.1:$port" --store "$store")
else
  queue_args=(--out "$store")
fi

uptime > "$dir/uptime-before.txt"
( while :; do echo "$(date +%s) $(cat /proc/loadavg)"; sleep 5; done ) > "$dir/load.txt" &
sampler=$!
t0=$(date +%s.%N)
if [ "$mode" != in-process ]; then
  for k in $(seq "$mode"); do
    "${NODE[@]}" examples/study/queue/worker.ts --redis "redis://127.0.0.1:$port" --store "$store" > "$dir/worker-$k.log" 2>&1 &
    pids+=($!)
  done
fi
status=0
"${NODE[@]}" examples/study.ts "${queue_args[@]}" "$@" > "$dir/study.log" 2>&1 || status=$?
t1=$(date +%s.%N)
kill "$sampler" 2>/dev/null || true
sampler=
uptime > "$dir/uptime-after.txt"
wall=$(echo "$t1 - $t0" | bc)
loads=$(awk '{print $2}' "$dir/load.txt")
mean=$(echo "$loads" | awk '{s+=$1; n++} END {if (n) printf "%.2f", s/n}')
range=$(echo "$loads" | sort -n | awk 'NR==1{lo=$1} {hi=$1} END {print lo "–" hi}')
{
  echo "mode: $mode  study options: $*"
  echo "exit status: $status"
  printf 'wall time: %.0f s\n' "$wall"
  echo "uptime before: $(cat "$dir/uptime-before.txt")"
  echo "uptime after:  $(cat "$dir/uptime-after.txt")"
  echo "1-min load average during the run (every 5 s): mean $mean, range $range"
  echo "jobs done per worker: $(for k in $(seq "${mode/in-process/0}"); do printf '%s ' "$(grep -c ': done in ' "$dir/worker-$k.log" || true)"; done)"
} | tee "$dir/summary.txt"
exit "$status"
