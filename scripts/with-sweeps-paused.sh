#!/usr/bin/env bash
# Run a command with every running sweep of this machine paused (SIGSTOP), and resume them
# (SIGCONT) when it ends, however it ends. On two cores a background run at two threads and
# foreground work at two threads slow each other 6x and more (benchmarks/background_contention.py);
# pausing keeps the foreground at full speed and loses the background nothing but the time.
#   scripts/with-sweeps-paused.sh make test
set -uo pipefail
pids=$(pgrep -f "ncrepro.sweep|ncrepro-sweep" | grep -v "^$$\$" || true)
[ -n "$pids" ] && kill -STOP $pids
trap '[ -n "$pids" ] && kill -CONT $pids 2>/dev/null' EXIT
"$@"
