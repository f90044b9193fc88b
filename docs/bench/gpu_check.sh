#!/usr/bin/env bash
# One GPU check of the three 3B presets on random-3b (the 3B's exact shape, random weights:
# completions run to the length limit, the worst case), in one call of at most ~8 minutes on
# an H100 or H200 (each --check gets 75 s, each timed run 85 s: 8 minutes at most):
#   1. `train --check` for qwen2.5-vl-3b, qwen2.5-vl-3b-lora and qwen2.5-vl-3b-colab (the
#      colab preset capped at 15 GiB and in fp16, as on a T4);
#   2. 3 timed steps of each, recorded by measure.sh as docs/bench/<card>-<preset>.jsonl.
#
#   usage: bash docs/bench/gpu_check.sh [WHEELS]
# WHEELS: a folder of the pinned wheels (pip download -r .ci/constraints.txt -d WHEELS) for a
# GPU machine without internet; they are installed offline first. Prints the versions it ran
# with, so a record says what it measured.
set -u
cd "$(dirname "$0")/../.."
if [ -n "${1:-}" ]; then
    python3 -m pip install --quiet --no-index --find-links "$1" -c .ci/constraints.txt -e . \
        || echo "offline install from $1 failed: running with what is installed"
fi
card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr 'A-Z ' 'a-z-' | tr -cd 'a-z0-9-')
out=docs/bench
python3 - <<'EOF' | tee "$out/$card-env.txt"
import importlib.metadata as m, platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| cuda", torch.version.cuda)
for name in ("transformers", "trl", "peft", "accelerate", "datasets"):
    try:
        print(name, m.version(name))
    except m.PackageNotFoundError:
        print(name, "not installed")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(p.name, f"{p.total_memory / 2**30:.1f} GiB, compute capability {p.major}.{p.minor}")
EOF
capped() {  # capped GIB ARGS...: grit_lite.train with the process held to GIB of the card
    local gib=$1
    shift
    python3 -c '
import sys, torch
cap = float(sys.argv[1])
if cap > 0:
    torch.cuda.set_per_process_memory_fraction(cap * 2**30 / torch.cuda.get_device_properties(0).total_memory)
from grit_lite.train import main
main(sys.argv[2:])
' "$gib" "$@"
}
# A 64 GiB disk holds the venv and the wheels; what a run keeps must fit beside them: weights
# only, one checkpoint (the full preset would otherwise keep ~90 GB of optimizer state).
disk="--weights-only-checkpoints --keep-checkpoints 1"
for preset in qwen2.5-vl-3b qwen2.5-vl-3b-lora qwen2.5-vl-3b-colab; do
    cap=0
    [ "$preset" = qwen2.5-vl-3b-colab ] && cap=15
    echo "== $preset: --check (cap ${cap} GiB; 0 = the whole card)"
    timeout 75 bash -c "$(declare -f capped); capped $cap --check --preset $preset --model random-3b $disk" \
        2>&1 | grep -v "it/s]" | tee "$out/$card-$preset-check.txt"
    echo "== $preset: 3 timed steps"
    bash docs/bench/measure.sh "$preset" 3 "$card-$preset" 85 "$out" "$cap"
    tail -3 "$out/$card-$preset.log"
done
