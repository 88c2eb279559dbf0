#!/usr/bin/env bash
# Rerun every benchmark of docs/benchmarks.md, one after the other, on a quiet machine.
#
#   bash benchmarks/run_all.sh [OUTDIR]     # default build/bench; about 30 min on 2 cores
#
# Each benchmark's output goes to OUTDIR/<name>.txt with the load average before it and its wall
# time after it, so docs/benchmarks.md can be refreshed from one folder. Run nothing else meanwhile:
# the 1-minute load average before each run should be near 0.
set -uo pipefail
out=${1:-build/bench}
mkdir -p "$out"
export PYTHONPATH=${PYTHONPATH:-src}
py=${PYTHON:-python}

run() {  # name, then the benchmark's arguments
    local name=$1
    shift
    {
        echo "# $py $* ($(date -u +%FT%TZ); load average $(cut -d' ' -f1-3 /proc/loadavg))"
        local start=$SECONDS
        "$py" "$@" 2>&1
        echo "# exit $?; wall $((SECONDS - start)) s"
    } >"$out/$name.txt"
    echo "$name: $(tail -n 1 "$out/$name.txt")"
}

run stamps benchmarks/stamps.py
run train benchmarks/train.py --samples 20000
run crowd benchmarks/crowd.py --repeat 5
run metrics benchmarks/metrics.py
run simulate benchmarks/simulate.py --visits 20
run score benchmarks/score.py --markdown
run precision benchmarks/precision.py
run identity benchmarks/identity.py --compare benchmarks/identity-baseline.json
run scale benchmarks/scale.py --rows 40000 --parts 8 --repeat 2 --markdown
run conditions benchmarks/conditions.py
run alerts benchmarks/alerts.py --n 8000
run inject benchmarks/inject.py --frames 16
run label_load benchmarks/label_load.py --out "$out/label_load.json"
