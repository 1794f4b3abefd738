"""Running a protocol's grid with a scheduler: parallel processes on one machine, or a SLURM job
array, through submitit (the same job function in both), with per-run locks so that no two
processes ever train the same run, and requeueing on preemption.

``python -m ncrepro.sweep PROTOCOL --executor local --devices cuda:0,cuda:1`` starts one worker
per device; each worker takes pending runs in the protocol's priority order, one at a time, each
under its lock. ``--executor slurm`` submits one job array with one task per pending run.
A job that is preempted (SIGUSR2 from SLURM before the kill, or ``job._interrupt()`` locally)
is requeued by submitit's ``checkpoint`` hook and resumes from the run's last per-epoch
checkpoint: on the CPU the finished run is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from .protocol import load_protocol, ordered_runs, results_folder
from .results import finished_result
from .train import TrainConfig, checkpoint_path, train

__all__ = ["RunLock", "LockHeld", "SweepWorker", "submit_local", "submit_slurm", "lock_path", "lock_state",
           "run_checkpoint", "run_states", "train_run"]

DEFAULT_LOCK_EXPIRY_HOURS = 48.0


def lock_path(result_path: Path) -> Path:
    """The lock file of a run: ``<result stem>.lock`` beside its result."""
    result_path = Path(result_path)
    return result_path.with_name(result_path.stem + ".lock")


def run_checkpoint(out: Path) -> Path:
    """A sweep run's checkpoint, in the tracked in-progress folder; one left beside the result
    by an older version is moved there first."""
    ckpt = checkpoint_path(out, in_progress=True)
    old = checkpoint_path(out)
    if old.exists() and not ckpt.exists():
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        os.replace(old, ckpt)
    return ckpt


def train_run(config: TrainConfig, out: Path, **train_options) -> dict:
    """Train (or resume) one run of a sweep: its checkpoint lives in the in-progress folder
    beside the results (tracked, so an unfinished run can be committed and continued from a
    fresh clone elsewhere), and is removed once the result is written. The caller holds the
    run's lock."""
    ckpt = run_checkpoint(out)
    result = train(config, out, resume=True, checkpoint=ckpt, **train_options)
    ckpt.unlink(missing_ok=True)
    return result



def run_states(proto: dict, results_dir: Path | None = None,
               lock_expiry_hours: float = DEFAULT_LOCK_EXPIRY_HOURS) -> list[tuple[str, str]]:
    """``(run name, state)`` in priority order: ``done``, ``running (host pid, since ...)``,
    ``partial (epoch k of n)`` or ``pending``."""
    out_dir = results_folder(proto, results_dir)
    states = []
    for name, config in ordered_runs(proto):
        out = out_dir / f"{name}.json"
        if finished_result(out, config) is not None:
            states.append((name, "done"))
            continue
        holder = lock_state(lock_path(out), lock_expiry_hours)
        if holder is not None:
            states.append((name, f"running ({holder['host']} pid {holder['pid']}, since {holder['started']})"))
            continue
        ckpt = run_checkpoint(out)
        if ckpt.exists():
            try:
                epochs = len(torch.load(ckpt, map_location="cpu", weights_only=True)["history"])
                states.append((name, f"partial (epoch {epochs} of {config.epochs})"))
            except Exception:  # noqa: BLE001 - a damaged checkpoint is reported, not fatal here
                states.append((name, "partial (checkpoint unreadable)"))
            continue
        states.append((name, "pending"))
    return states


class LockHeld(Exception):
    """Another live process holds the run's lock (``info`` says who and since when)."""

    def __init__(self, path: Path, info: dict) -> None:
        super().__init__(f"{path}: held by {info.get('host')} pid {info.get('pid')} since {info.get('started')}")
        self.info = info


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_state(path: Path, expiry_hours: float = DEFAULT_LOCK_EXPIRY_HOURS) -> dict | None:
    """The holder of a live lock (``host``, ``pid``, ``started``), or None when the lock is absent
    or stale: left by a dead process on this host, older than ``expiry_hours`` from another
    host, or unreadable."""
    try:
        info = json.loads(Path(path).read_text())
        host, pid, started = info["host"], int(info["pid"]), info["started"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if host == socket.gethostname():
        return info if _pid_alive(pid) else None
    age = time.time() - datetime.fromisoformat(started).timestamp()
    return info if age < 3600.0 * expiry_hours else None


class RunLock:
    """A per-run lock file, created atomically (``O_CREAT | O_EXCL``) with the holder's host, pid
    and start time. A stale lock (see :func:`lock_state`) is taken over; a live one raises
    :class:`LockHeld`. Use as a context manager; the lock is removed on exit."""

    def __init__(self, result_path: Path, expiry_hours: float = DEFAULT_LOCK_EXPIRY_HOURS) -> None:
        self.path = lock_path(result_path)
        self.expiry_hours = expiry_hours
        self.held = False

    def acquire(self) -> "RunLock":
        info = {"host": socket.gethostname(), "pid": os.getpid(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, stat.S_IRUSR | stat.S_IWUSR)
            except FileExistsError:
                holder = lock_state(self.path, self.expiry_hours)
                if holder is not None:
                    raise LockHeld(self.path, holder) from None
                # Stale: take it over. Renaming first means two processes cannot both remove
                # it and then both create a fresh one unnoticed: only one rename succeeds.
                try:
                    os.replace(self.path, self.path.with_suffix(f".stale-{os.getpid()}"))
                    os.unlink(self.path.with_suffix(f".stale-{os.getpid()}"))
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(info, f)
            self.held = True
            return self
        raise LockHeld(self.path, lock_state(self.path, self.expiry_hours) or {})

    def release(self) -> None:
        if self.held:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@dataclass
class SweepWorker:
    """The job function of both executors: trains runs of a protocol, each under its lock.

    With ``names`` it trains exactly those runs (one SLURM array task: one name); without, it
    takes every pending run in the protocol's priority order until none is left (a local worker
    pinned to ``device``). Returns the names it trained. ``checkpoint`` is submitit's hook: on
    preemption the same worker is requeued, and it resumes each run from its checkpoint.
    """

    protocol: str
    results_dir: str | None = None
    device: str | None = None
    names: list[str] | None = None
    threads: int | None = None
    lock_expiry_hours: float = DEFAULT_LOCK_EXPIRY_HOURS
    trained: list[str] = field(default_factory=list)

    def __call__(self) -> list[str]:
        if self.threads:
            torch.set_num_threads(self.threads)
        proto = load_protocol(self.protocol)
        out_dir = results_folder(proto, self.results_dir)
        wanted = None if self.names is None else set(self.names)
        for name, config in ordered_runs(proto):
            if wanted is not None and name not in wanted:
                continue
            if self.device:
                config.device = self.device
            out = out_dir / f"{name}.json"
            if finished_result(out, config) is not None:
                continue
            try:
                with RunLock(out, self.lock_expiry_hours):
                    if finished_result(out, config) is not None:   # finished while we waited
                        continue
                    print(f"[{socket.gethostname()} pid {os.getpid()} {config.device}] {name}: training", flush=True)
                    train_run(config, out, progress=False, log=lambda m: print(m, flush=True))
                    self.trained.append(name)
            except LockHeld as held:
                print(f"{name}: skipped, {held}", flush=True)
        return list(self.trained)

    def checkpoint(self):
        import submitit

        # The run's own per-epoch checkpoint is the state: requeue the same worker.
        return submitit.helpers.DelayedSubmission(self)


def _log_dir(proto: dict, results_dir) -> Path:
    return results_folder(proto, results_dir) / "logs"


def submit_local(protocol: str, devices: list[str], *, results_dir=None, timeout_min: int = 60 * 24 * 7,
                 lock_expiry_hours: float = DEFAULT_LOCK_EXPIRY_HOURS):
    """One submitit local job per device, each a :class:`SweepWorker` pinned to it. CPU workers
    share the machine's cores evenly. Returns the submitit jobs."""
    import submitit

    proto = load_protocol(protocol)
    if not devices:
        raise ValueError("--devices names at least one device (cuda:0,cuda:1 or cpu,cpu)")
    cpu_workers = sum(d == "cpu" for d in devices)
    threads = max(1, (os.cpu_count() or 1) // cpu_workers) if cpu_workers else None
    executor = submitit.LocalExecutor(folder=str(_log_dir(proto, results_dir)))
    executor.update_parameters(timeout_min=timeout_min)
    workers = [SweepWorker(protocol=proto["_path"], results_dir=None if results_dir is None else str(results_dir),
                           device=d, threads=threads if d == "cpu" else None, lock_expiry_hours=lock_expiry_hours)
               for d in devices]
    with executor.batch():
        jobs = [executor.submit(w) for w in workers]
    return jobs


def _parse_extra(pairs: list[str]) -> dict:
    extra = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--slurm-extra takes KEY=VALUE, got {pair!r}")
        extra[key] = value
    return extra


def submit_slurm(protocol: str, *, results_dir=None, partition: str | None = None, time_min: int = 24 * 60,
                 gpus_per_task: int = 1, array_parallelism: int = 64, extra: list[str] = (),
                 dry_run: bool = False, lock_expiry_hours: float = DEFAULT_LOCK_EXPIRY_HOURS) -> dict:
    """Submit one SLURM job array with one task per pending run, through submitit.

    With ``dry_run`` nothing is submitted: submitit runs its whole submission path against a
    stand-in ``sbatch`` that records the script, which is returned (``script``) with the runs.
    Returns ``{"job_id", "runs", "logs", "script"}``.
    """
    import submitit

    proto = load_protocol(protocol)
    if not dry_run and not (shutil.which("sbatch") and shutil.which("srun")):
        raise ValueError("sbatch and srun are not on this machine's PATH: submit from a SLURM login node, "
                         "or add --dry-run to see the job script")
    pending = [name for name, state in run_states(proto, Path(results_dir) if results_dir else None)
               if state == "pending" or state.startswith("partial")]
    if not pending:
        return {"job_id": None, "runs": [], "logs": None, "script": None}
    logs = _log_dir(proto, results_dir)
    params = {"timeout_min": time_min, "slurm_array_parallelism": array_parallelism,
              "slurm_additional_parameters": _parse_extra(list(extra)), "name": f"ncrepro-{proto['name']}"}
    if partition:
        params["slurm_partition"] = partition
    if gpus_per_task:
        params["slurm_gpus_per_task"] = gpus_per_task
    workers = [SweepWorker(protocol=proto["_path"], results_dir=None if results_dir is None else str(results_dir),
                           names=[name], lock_expiry_hours=lock_expiry_hours) for name in pending]
    stand_in = tempfile.mkdtemp(prefix="ncrepro-sbatch-") if dry_run else None
    folder = Path(stand_in) / "logs" if dry_run else logs
    old_path = os.environ.get("PATH", "")
    try:
        if dry_run:
            # Stand-ins for SLURM's commands: sbatch records the script and answers with a job id;
            # srun only has to exist (submitit checks for it).
            tools = Path(stand_in)
            (tools / "sbatch").write_text('#!/bin/sh\ncp "$1" "$(dirname "$0")/submitted.sh"\n'
                                          'echo "Submitted batch job 4242"\n')
            (tools / "srun").write_text("#!/bin/sh\nexit 0\n")
            for tool in ("sbatch", "srun"):
                (tools / tool).chmod(0o755)
            os.environ["PATH"] = f"{stand_in}{os.pathsep}{old_path}"
        executor = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
        executor.update_parameters(**params)
        jobs = executor.submit_array(workers)
        job_id = jobs[0].job_id.split("_")[0]
        text = (Path(stand_in) / "submitted.sh").read_text() if dry_run else None
    finally:
        os.environ["PATH"] = old_path
        if stand_in:
            shutil.rmtree(stand_in, ignore_errors=True)
    return {"job_id": None if dry_run else job_id, "runs": pending, "logs": str(logs), "script": text}


def squeue_hint(job_id: str) -> str:
    """How to follow a submitted array."""
    return f"follow it with: squeue -j {job_id}   (accounting: sacct -j {job_id})"
