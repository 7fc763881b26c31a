#!/usr/bin/env bash
# One-seed reproduction of the key imagination differences (fl1_core/imagination_check.py):
#   scripts/imagination_check.sh WORLD_SEED TRAIN_SEED OUT_DIR
# Generates the world of WORLD_SEED, trains latent / pause-token / text-only SFT from the shipped world base (seed
# TRAIN_SEED, the demo's sizes), decodes every frame-needing held-out item as it is, with oracle, with shuffled and
# with present-frame latents, and prints one JSON line of paired differences (points of the concluded option, 95 %
# item-level CIs). Two threads, fixed; about 5 minutes on an idle 2-core machine. Exit 0 whatever the numbers, 2 on a
# usage error. `python -m fl1_core.imagination_check … --base CKPT --set k=v` tries a candidate base or SFT setting.
set -uo pipefail
usage="usage: imagination_check.sh WORLD_SEED TRAIN_SEED OUT_DIR   (seeds: non-negative integers)"
if [ "$#" -ne 3 ] || ! [[ "$1" =~ ^[0-9]+$ ]] || ! [[ "$2" =~ ^[0-9]+$ ]] || [ -z "$3" ]; then
    echo "$usage" >&2
    exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"
out="$(realpath -m "$3")"  # OUT_DIR relative to where the command was typed
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
cd "$root" && exec "$python" -m fl1_core.imagination_check "$1" "$2" "$out"
