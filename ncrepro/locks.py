"""One writer per result: a lock file beside each run's result, taken by every process that
trains the run (``ncrepro-train`` and every sweep, local worker or SLURM task).

A lock is ``<result stem>.lock``, created atomically (``O_CREAT | O_EXCL``) with the holder's host,
pid, the pid's start time and the lock's creation time. It is *stale*, and taken over, when it
cannot be read or parsed, when its process is gone (same host: the pid is dead, or now belongs to
another process that started later), or when it is older than the expiry (any host). A live lock
raises :class:`LockHeld`.
"""

from __future__ import annotations

import json
import math
import os
import socket
import stat
import time
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["RunLock", "LockHeld", "lock_path", "lock_state", "check_expiry", "DEFAULT_LOCK_EXPIRY_HOURS"]

DEFAULT_LOCK_EXPIRY_HOURS = 48.0


def lock_path(result_path: str | os.PathLike) -> Path:
    """The lock file of a run: ``<result stem>.lock`` beside its result."""
    result_path = Path(result_path)
    return result_path.with_name(result_path.stem + ".lock")


def check_expiry(hours) -> float:
    """``hours`` as a positive finite float, or ValueError."""
    try:
        value = float(hours)
    except (TypeError, ValueError):
        raise ValueError(f"lock expiry must be a number of hours, got {hours!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"lock expiry must be a positive finite number of hours, got {hours!r}")
    return value


class LockHeld(Exception):
    """Another live process holds the run's lock (``info`` says who and since when)."""

    def __init__(self, path: Path, info: dict) -> None:
        super().__init__(f"{path}: held by {info.get('host')} pid {info.get('pid')} since {info.get('started')}")
        self.info = info


def _process_start(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, from /proc), or None where that is unknown:
    a pid reused by a later process has a later start."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()
    except (OSError, IndexError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def lock_state(path: str | os.PathLike, expiry_hours: float = DEFAULT_LOCK_EXPIRY_HOURS) -> dict | None:
    """The holder of a live lock (``host``, ``pid``, ``started``), or None when the lock is absent
    or stale: unreadable or malformed, older than ``expiry_hours`` (any host), or left by a
    process of this host that is gone (its pid is dead, or reused by a process that started
    after the lock's)."""
    expiry_hours = check_expiry(expiry_hours)
    try:
        info = json.loads(Path(path).read_text())
        host, pid, started = str(info["host"]), int(info["pid"]), str(info["started"])
        created = datetime.fromisoformat(started)
        if created.tzinfo is None:
            created = created.replace(tzinfo=timezone.utc)
        age = time.time() - created.timestamp()
    except (OSError, ValueError, KeyError, TypeError, OverflowError):
        return None
    if not (age < 3600.0 * expiry_hours):
        return None
    if host == socket.gethostname():
        if not _pid_alive(pid):
            return None
        recorded, current = info.get("pid_start"), _process_start(pid)
        if recorded is not None and current is not None and str(recorded) != current:
            return None  # the pid now belongs to another process
    return info


class RunLock:
    """A per-run lock file (see the module's description). Use as a context manager; the lock is
    removed on exit."""

    def __init__(self, result_path: str | os.PathLike, expiry_hours: float = DEFAULT_LOCK_EXPIRY_HOURS) -> None:
        self.path = lock_path(result_path)
        self.expiry_hours = check_expiry(expiry_hours)
        self.held = False

    def acquire(self) -> "RunLock":
        info = {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": _process_start(os.getpid()),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(f"{self.path.parent}: cannot create the results folder ({err.strerror or err})") from None
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
            except OSError as err:
                raise ValueError(f"{self.path}: cannot create the run's lock ({err.strerror or err})") from None
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
