"""A background training run beside foreground work on a 2-core machine: how much each slows the
other, under the thread and OpenMP settings one might use.

The background is a training loop (ResNet18 width 1/8, batch 128, as a sweep runs it); the
foreground is the same loop for a fixed number of steps, standing in for a test run or a book
build. Each setting is measured with both sides started afresh; the baselines are each side
alone. Reported: the foreground's time against alone, and the background's throughput during the
foreground against alone. Run it with nothing else on the machine (pause any sweep:
``kill -STOP``).

    python benchmarks/background_contention.py [--steps 300]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_LOOP = r"""
import os, sys, time, torch
from ncrepro.models import build_model
torch.manual_seed(0)
model = build_model("resnet18", width=0.125).to(memory_format=torch.channels_last)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
x = torch.randn(128, 3, 32, 32).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (128,))
steps = int(sys.argv[1])  # 0: forever, printing a time stamp every 5 steps
i = 0
start = time.perf_counter()
while steps == 0 or i < steps:
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    i += 1
    if steps == 0 and i % 5 == 0:
        print(time.perf_counter(), flush=True)
if steps:
    print(time.perf_counter() - start, flush=True)
"""


def _env(threads: int, policy: str | None) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    return env


def foreground(steps: int, threads: int, policy: str | None) -> float:
    out = subprocess.run([sys.executable, "-c", _LOOP, str(steps)], env=_env(threads, policy), capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _start_background(bg: tuple[int, str | None], log):
    proc = subprocess.Popen([sys.executable, "-u", "-c", _LOOP, "0"], env=_env(*bg), stdout=log)
    while not Path(log.name).read_text().strip():  # warmed up: its first stamp is out
        time.sleep(0.2)
    return proc


def _rate(log_path: str, t0: float, t1: float) -> float:
    """Background steps per second between t0 and t1, from its time stamps (one per 5 steps)."""
    stamps = [float(s) for s in Path(log_path).read_text().split() if t0 <= float(s) <= t1]
    return 5 * (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0


def with_background(steps: int, fg: tuple[int, str | None], bg: tuple[int, str | None]) -> tuple[float, float]:
    """Foreground seconds, and the background's steps per second while the foreground ran."""
    with tempfile.NamedTemporaryFile("w", suffix=".log") as log:
        proc = _start_background(bg, log)
        try:
            time.sleep(2.0)
            t0 = time.perf_counter()
            seconds = foreground(steps, *fg)
            t1 = time.perf_counter()
        finally:
            proc.kill()
            proc.wait()
        return seconds, _rate(log.name, t0, t1)


def background_alone(seconds: float, bg: tuple[int, str | None]) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".log") as log:
        proc = _start_background(bg, log)
        try:
            t0 = time.perf_counter()
            time.sleep(seconds)
            t1 = time.perf_counter()
        finally:
            proc.kill()
            proc.wait()
        return _rate(log.name, t0, t1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300, help="foreground training steps")
    args = p.parse_args(argv)
    print(f"{os.cpu_count()} CPUs; foreground: {args.steps} steps of ResNet18 width 1/8 at batch 128", flush=True)
    alone = foreground(args.steps, 2, None)
    rates = {bg: background_alone(15.0, bg) for bg in ((2, None), (1, None), (2, "PASSIVE"))}
    print(f"foreground alone (2 threads): {alone:.1f} s; background alone: "
          + ", ".join(f"{t} thread(s){' ' + pol if pol else ''} {r:.2f} steps/s" for (t, pol), r in rates.items()),
          flush=True)
    settings = [
        ("both 2 threads, OpenMP default", (2, None), (2, None)),
        ("both 2 threads, OMP_WAIT_POLICY=PASSIVE", (2, "PASSIVE"), (2, "PASSIVE")),
        ("foreground 1 thread, background 2", (1, None), (2, None)),
        ("both 1 thread", (1, None), (1, None)),
    ]
    for name, fg, bg in settings:
        seconds, rate = with_background(args.steps, fg, bg)
        base = rates.get(bg, rates[(2, None)])
        print(f"{name:42} foreground {seconds:6.1f} s ({seconds / alone:4.1f}x alone); background "
              f"{rate:.2f} steps/s ({rate / rates[(2, None)]:.2f} of its 2-thread speed alone; "
              f"{rate / base:.2f} of this setting alone)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
