#!/usr/bin/env bash
# Measure one 3B preset on a GPU the way docs/benchmarks.md reports it: TRL's per-step log
# (metrics.jsonl), nvidia-smi's memory.used once a second, and the run's own output.
#   usage: bash docs/bench/measure.sh PRESET STEPS NAME [SECONDS] [DIR]
# writes DIR/NAME.jsonl, DIR/NAME-memory.csv and DIR/NAME.log (DIR: docs/bench); SECONDS > 0
# stops the run after that long, keeping the steps already logged.
set -u
preset=$1 steps=$2 name=$3 limit=${4:-0} dir=${5:-docs/bench}
mkdir -p "$dir"
run="runs/bench-$name"
rm -rf "$run"
echo "timestamp, memory.used (nvidia-smi, sampled every second)" >"$dir/$name-memory.csv"
nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader -lms 1000 \
    >>"$dir/$name-memory.csv" &
sampler=$!
timeout "$limit" python3 -m grit_lite.train --preset "$preset" --model random-3b \
    --max-steps "$steps" --rollouts 0 --output "$run" >"$dir/$name.log" 2>&1
echo "exit status $?" >>"$dir/$name.log"
kill "$sampler"
cp "$run/metrics.jsonl" "$dir/$name.jsonl" 2>/dev/null || echo "no metrics.jsonl" >>"$dir/$name.log"
