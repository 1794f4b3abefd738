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
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .locks import DEFAULT_LOCK_EXPIRY_HOURS, LockHeld, RunLock, lock_path, lock_state
from .protocol import load_protocol, ordered_runs, results_folder
from .results import finished_result
from .train import TrainConfig, checkpoint_path, train

__all__ = ["SweepWorker", "submit_local", "submit_slurm", "run_checkpoint", "run_states", "train_run",
           "RUN_FAILURES", "failure_path", "record_failure", "read_failure"]

def run_checkpoint(out: Path) -> Path:
    """A sweep run's checkpoint, in the tracked in-progress folder; one left beside the result
    by an older version is moved there first."""
    ckpt = checkpoint_path(out, in_progress=True)
    old = checkpoint_path(out)
    if old.exists() and not ckpt.exists():
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        os.replace(old, ckpt)
    return ckpt


#: What a run that fails leaves for the sweep to go on: any of these is recorded as the run's
#: failure (a diverging loss, a bad setting, an unreadable checkpoint, a full disk), not raised.
RUN_FAILURES = (ValueError, FloatingPointError, RuntimeError, OSError)


def failure_path(out: Path) -> Path:
    """Where a failed run's reason is recorded: ``<result stem>.failed.json`` beside its result."""
    out = Path(out)
    return out.with_name(out.stem + ".failed.json")


def record_failure(out: Path, err: BaseException) -> dict:
    """Write why a run failed (atomically) and return the record."""
    from datetime import datetime, timezone

    from . import _io

    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    info = {"error": type(err).__name__, "reason": reason[:500], "host": socket.gethostname(), "pid": os.getpid(),
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "git_commit": _io.git_commit()}
    try:
        _io.atomic_write_json(failure_path(out), info)
    except OSError:
        pass  # the failure is still reported by the sweep
    return info


def read_failure(out: Path) -> dict | None:
    """The recorded failure of a run, or None."""
    try:
        info = json.loads(failure_path(out).read_text())
        return info if isinstance(info, dict) else {"reason": "unreadable failure record"}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"reason": "unreadable failure record"}


def train_run(config: TrainConfig, out: Path, **train_options) -> dict:
    """Train (or resume) one run of a sweep: its checkpoint lives in the in-progress folder
    beside the results (tracked, so an unfinished run can be committed and continued from a
    fresh clone elsewhere), and is removed once the result is written, as is the record of an
    earlier failure. The caller holds the run's lock."""
    ckpt = run_checkpoint(out)
    result = train(config, out, resume=True, checkpoint=ckpt, **train_options)
    ckpt.unlink(missing_ok=True)
    failure_path(out).unlink(missing_ok=True)
    return result



def run_states(proto: dict, results_dir: Path | None = None,
               lock_expiry_hours: float = DEFAULT_LOCK_EXPIRY_HOURS) -> list[tuple[str, str]]:
    """``(run name, state)`` in priority order: ``done``, ``running (host pid, since ...)``,
    ``failed (reason)``, ``partial (epoch k of n)`` or ``pending``."""
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
        failure = read_failure(out)
        if failure is not None:
            states.append((name, f"failed ({failure.get('reason', 'no reason recorded')})"))
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
                    try:
                        train_run(config, out, progress=False, log=lambda m: print(m, flush=True))
                    except RUN_FAILURES as err:
                        info = record_failure(out, err)
                        print(f"{name}: failed: {info['reason']}", flush=True)
                        continue
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
    for device in devices:
        try:
            kind = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"--devices: {device!r} is not a device (cpu, cuda, cuda:N)") from None
        if kind.type not in ("cpu", "cuda"):
            raise ValueError(f"--devices: {device!r} is not a device (cpu, cuda, cuda:N)")
        if kind.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--devices: {device} asked for, but CUDA is not available on this machine")
        if kind.type == "cuda" and kind.index is not None and kind.index >= torch.cuda.device_count():
            raise ValueError(f"--devices: {device} asked for, but this machine has {torch.cuda.device_count()} GPU(s)")
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
        if any(c in pair for c in "\n\r\0") or not key.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"--slurm-extra {pair!r}: the key must be an sbatch option name and neither part may "
                             f"hold a newline")
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

    for flag, value in (("--slurm-time", time_min), ("--slurm-gpus-per-task", gpus_per_task),
                        ("--slurm-array-parallelism", array_parallelism)):
        if not (isinstance(value, int) and value >= (0 if flag == "--slurm-gpus-per-task" else 1)):
            raise ValueError(f"{flag} must be a {'non-negative' if flag == '--slurm-gpus-per-task' else 'positive'} "
                             f"integer, got {value}")
    if partition is not None and (not partition.strip() or any(c in partition for c in "\n\r\0 ")):
        raise ValueError(f"--slurm-partition must be a partition name, got {partition!r}")
    extra_params = _parse_extra(list(extra))
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
              "slurm_additional_parameters": extra_params, "name": f"ncrepro-{proto['name']}"}
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
