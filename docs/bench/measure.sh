#!/usr/bin/env bash
# Measure one 3B preset on a GPU the way docs/benchmarks.md reports it: TRL's per-step log
# (metrics.jsonl), nvidia-smi's memory.used once a second, and the run's own output.
#   usage: bash docs/bench/measure.sh PRESET STEPS NAME [SECONDS] [DIR] [CAP_GIB]
# writes DIR/NAME.jsonl, DIR/NAME-memory.csv and DIR/NAME.log (DIR: docs/bench); SECONDS > 0
# stops the run after that long, keeping the steps already logged. CAP_GIB > 0 lets the run
# allocate no more than that (torch.cuda.set_per_process_memory_fraction), to measure a
# smaller card's preset (e.g. 15 for a T4's qwen2.5-vl-3b-colab) on a bigger GPU.
set -u
preset=$1 steps=$2 name=$3 limit=${4:-0} dir=${5:-docs/bench} cap=${6:-0}
mkdir -p "$dir"
run="runs/bench-$name"
rm -rf "$run"
echo "timestamp, memory.used (nvidia-smi, sampled every second)" >"$dir/$name-memory.csv"
nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader -lms 1000 \
    >>"$dir/$name-memory.csv" &
sampler=$!
timeout "$limit" python3 -c '
import sys, torch
cap = float(sys.argv[1])
if cap > 0:
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(cap * 2**30 / total)
from grit_lite.train import main
main(sys.argv[2:])
' "$cap" --preset "$preset" --model random-3b \
    --max-steps "$steps" --rollouts 0 --output "$run" \
    --weights-only-checkpoints --keep-checkpoints 1 >"$dir/$name.log" 2>&1
echo "exit status $?" >>"$dir/$name.log"
kill "$sampler"
cp "$run/metrics.jsonl" "$dir/$name.jsonl" 2>/dev/null || echo "no metrics.jsonl" >>"$dir/$name.log"
