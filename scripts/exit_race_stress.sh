#!/usr/bin/env bash
# Exit N times (default 40) while a daemon thread runs an NMF kernel, beside four
# CPU-bound processes (twice as many as 2 cores run at once, so the exiting threads are
# descheduled at random points), and count the exits that did not end normally.
# Usage: bash scripts/exit_race_stress.sh [N]   (from the repository root, matchar importable)
set -uo pipefail
n="${1:-40}"
python="${PYTHON:-python}"
hogs=()
for _ in 1 2 3 4; do
    sh -c 'while :; do :; done' &
    hogs+=($!)
done
trap 'kill "${hogs[@]}" 2>/dev/null' EXIT
code='
import threading, time
import numpy as np
import matchar as mc
X = np.random.default_rng(0).poisson(5.0, (20000, 512)).astype(np.uint16)
fit = lambda: mc.spectral.NMF(4, init="random", max_iter=10**6, tol=0).fit(X)
threading.Thread(target=fit, daemon=True).start()
time.sleep(0.3)
'
fails=0
for i in $(seq 1 "$n"); do
    if ! err=$(OMP_NUM_THREADS=1 timeout 300 "$python" -c "$code" 2>&1); then
        fails=$((fails + 1))
        echo "exit $i: ${err: -200}"
    fi
done
echo "$fails of $n exits did not end normally"
[ "$fails" -eq 0 ]
