#!/usr/bin/env bash
# The whole command for a lent GPU machine (and its CPU rehearsal here):
#
#     scripts/gpu-sweep.sh PROTOCOL MINUTES [DEVICE]
#
# Run from the repository root, after `scripts/prepare-gpu.sh` has put the dataset pack and the
# pure-Python helpers in the ignored folders data/packs/ and data/device-lib/ (carry both).
# DEVICE is cuda (default) or cpu. Steps:
#   1. check in seconds that the machine can run PROTOCOL (imports, device, dataset), else stop
#      with one line;
#   2. optionally (BENCH_SECONDS=N) run benchmarks/train_throughput.py for about N seconds
#      first, with the arguments in BENCH_ARGS if set (for example
#      BENCH_ARGS="--paths bf16/default,bf16/reduce-overhead --widths 1 --repeats 2"), its
#      report in $OUT/benchmark.txt, and take that time off the sweep's budget;
#   3. run the budgeted sweep: pending runs in the protocol's priority order, each started only
#      if its measured-throughput estimate fits the minutes left;
#   4. always write the finished results into one archive, $OUT/results.tar.gz (a sweep that
#      outruns its budget by a minute is interrupted first, so that this step still runs).
# Give the device call a timeout_s at least 90 s over MINUTES: a call stopped at its limit loses
# every result of that call (the archive is written last).
# COMPILE=MODE overrides the protocol's torch.compile mode for the sweep (for example
# COMPILE=default, should CUDA graphs fail on a machine).
# $OUT (default ./gpu-out) ends with at most 4 files: results.tar.gz, sweep.log, environment.txt
# and benchmark.txt. Import the archive here with: python -m ncrepro.sweep import ARCHIVE
set -uo pipefail

die() { echo "gpu-sweep: $*" >&2; exit 2; }
[ $# -ge 2 ] && [ $# -le 3 ] || die "usage: scripts/gpu-sweep.sh PROTOCOL MINUTES [DEVICE]  (DEVICE: cuda or cpu)"
protocol=$1
minutes=$2
device=${3:-cuda}
[[ $minutes =~ ^[0-9]+([.][0-9]+)?$ ]] && [[ $minutes != 0 && ! $minutes =~ ^0+(\.0+)?$ ]] \
    || die "MINUTES must be a positive number, got '$minutes'"
[[ $device == cuda || $device == cpu || $device =~ ^cuda:[0-9]+$ ]] || die "DEVICE must be cuda, cuda:N or cpu, got '$device'"
[ -d ncrepro/protocols ] || die "run me from the repository root (no ncrepro/protocols/ here)"

out=${OUT:-./gpu-out}
mkdir -p "$out" 2>/dev/null && [ -w "$out" ] || die "cannot write to the output folder $out"
log="$out/sweep.log"
: > "$log"

if [ -n "${PYTHON:-}" ]; then py=$PYTHON
elif [ -x .venv/bin/python ]; then py=.venv/bin/python
else py=python3
fi
export PYTHONPATH="$PWD:$PWD/data/device-lib${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${NCREPRO_GIT_COMMIT:-}" ] && [ -f data/device-lib/COMMIT ]; then
    NCREPRO_GIT_COMMIT=$(cat data/device-lib/COMMIT)
    export NCREPRO_GIT_COMMIT
fi
started=$(date +%s)

# 1. The environment, in seconds.
{
    echo "date: $(date -u +%FT%TZ)"
    echo "commit: ${NCREPRO_GIT_COMMIT:-from git}"
    "$py" -c 'import sys, torch, numpy, PIL; print("python", sys.version.split()[0], "torch", torch.__version__, "numpy", numpy.__version__, "pillow", PIL.__version__, "cuda", torch.version.cuda)' 2>&1
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
    echo "cpus: $(nproc)"
} > "$out/environment.txt"
"$py" -m ncrepro.sweep "$protocol" --check --device "$device" ${COMPILE:+--compile "$COMPILE"} 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || { echo "gpu-sweep: the environment check failed (above); nothing was run" | tee -a "$log" >&2; exit "$rc"; }

# 2. Optional throughput benchmark, charged to the budget.
if [ -n "${BENCH_SECONDS:-}" ]; then
    [[ $BENCH_SECONDS =~ ^[0-9]+$ ]] || die "BENCH_SECONDS must be a whole number of seconds"
    # BENCH_ARGS is split into words on purpose: it holds several arguments.
    # shellcheck disable=SC2086
    timeout --signal=INT "$BENCH_SECONDS" "$py" benchmarks/train_throughput.py --device "$device" ${BENCH_ARGS:-} \
        > "$out/benchmark.txt" 2>&1
    echo "benchmark: exit $? after $(( $(date +%s) - started )) s (report in benchmark.txt)" | tee -a "$log"
fi

# 3. The budgeted sweep, with what is left of MINUTES.
left=$("$py" -c "import sys; print(max(0.1, float(sys.argv[1]) - (float(sys.argv[2]) / 60)))" "$minutes" "$(( $(date +%s) - started ))")
# The sweep keeps to its budget at run and epoch boundaries; should anything outrun it by a minute,
# it is interrupted, so that step 4 still writes the archive inside the device call's time limit
# (give the call a timeout_s at least 90 s over MINUTES).
guard=$("$py" -c "import math, sys; print(math.ceil(float(sys.argv[1]) * 60) + 60)" "$left")
timeout --signal=INT --kill-after=15 "$guard" \
    "$py" -m ncrepro.sweep "$protocol" --device "$device" --budget-minutes "$left" --no-progress \
    ${COMPILE:+--compile "$COMPILE"} 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 124 ] && echo "gpu-sweep: the sweep outran its budget by a minute and was interrupted" | tee -a "$log"

# 4. The archive of everything finished, whatever happened above.
"$py" -m ncrepro.sweep export "$protocol" "$out/results.tar.gz" 2>&1 | tee -a "$log"
erc=${PIPESTATUS[0]}
echo "gpu-sweep: sweep exit $rc, export exit $erc, $(( $(date +%s) - started )) s in all" | tee -a "$log"
[ "$rc" -eq 0 ] && exit "$erc"
exit "$rc"
