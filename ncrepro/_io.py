"""Atomic writes and provenance helpers (private)."""

from __future__ import annotations

import functools
import glob
import json
import os
import subprocess
import tempfile
from pathlib import Path

import torch

from ._paths import PACKAGE_DIR

_SOURCE = PACKAGE_DIR.parent   # where git is asked about the commit


def umask_mode() -> int:
    """The permission bits a new file gets under this process's umask (``0o644`` under ``022``)."""
    # mkstemp creates files readable by their owner only; results should follow the umask.
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place: a reader
    sees the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) atomically, as :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temporaries(path: str | os.PathLike, older_than: float = 0.0) -> list[Path]:
    """Remove the temporary files that an atomic write of ``path`` leaves when its process is
    killed mid-write (``.<name>.<random>.tmp`` beside it), if older than ``older_than``
    seconds. With the default 0, call only while no other process writes ``path``."""
    import time

    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
        try:
            if time.time() - tmp.stat().st_mtime < older_than:
                continue
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def _no_constants(name: str):
    raise json.JSONDecodeError(f"{name} is not a number JSON allows", name, 0)


def strict_json_loads(text: str | bytes):
    """``json.loads`` that refuses NaN and Infinity (Python writes them, JSON does not allow them)."""
    return json.loads(text, parse_constant=_no_constants)


def read_json_file(path: str | os.PathLike, what: str, hint: str = ""):
    """The strict JSON in ``path``; one ValueError naming the file and ``what`` it should be
    (followed by ``hint``, the way out) if it cannot be read, is not UTF-8 or is not JSON."""
    path = Path(path)
    tail = f"; {hint}" if hint else ""
    try:
        return strict_json_loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text, so not {what}{tail}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}){tail}") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror or err}){tail}") from None


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the code this process runs, with ``-dirty`` when tracked files outside
    ``data/`` differed.

    Cached at its first call (made when training starts), so a long sweep records the commit
    it started from even if the checkout moves on while it runs. Where there is no git checkout
    (a copy of the tree on a GPU machine), ``NCREPRO_GIT_COMMIT`` says which commit it is."""
    if os.environ.get("NCREPRO_GIT_COMMIT"):
        return os.environ["NCREPRO_GIT_COMMIT"]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_SOURCE, capture_output=True,
                             text=True, check=True).stdout.strip()
        # Dirty means the code differs from the commit: results and checkpoints under data/ are
        # data (a sweep deletes a finished run's tracked checkpoint), so they do not count.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)data"], cwd=_SOURCE, capture_output=True, text=True,
                               check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads)"


# The widest arithmetic a CPU offers the training kernels, widest first: one model name ("AMD
# EPYC") covers machines with and without AVX512-BF16, which compute and round differently.
_CPU_INSTRUCTION_SETS = (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX512"),
                         ("avx2", "AVX2"))


def cpu_instruction_set(cpuinfo: str) -> str | None:
    """The widest of AMX-BF16, AVX512-BF16, AVX512 and AVX2 in the ``flags`` line of a
    ``/proc/cpuinfo`` text, ``"none of AVX2, AVX512, AMX"`` when it has none of them, and None
    when the text has no flags line.

    >>> cpu_instruction_set("flags\t: fpu sse2 avx2 avx512f avx512_bf16")
    'AVX512-BF16'
    >>> cpu_instruction_set("flags\t: fpu sse2 avx2")
    'AVX2'
    >>> cpu_instruction_set("flags\t: fpu sse2"), cpu_instruction_set("processor\t: 0")
    ('none of AVX2, AVX512, AMX', None)
    """
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return next((label for flag, label in _CPU_INSTRUCTION_SETS if flag in flags),
                        "none of AVX2, AVX512, AMX")
    return None


def read_cpuinfo() -> str:
    """This machine's ``/proc/cpuinfo`` text, empty where there is none (not Linux)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def has_native_bf16(instruction_set: str | None) -> bool:
    """Whether a CPU with this :func:`cpu_instruction_set` computes bfloat16 natively.

    >>> has_native_bf16("AVX512-BF16"), has_native_bf16("AVX512"), has_native_bf16(None)
    (True, False, False)
    """
    return instruction_set in ("AMX-BF16", "AVX512-BF16")


def machine_description(device: torch.device) -> dict:
    """Which machine computes: host name, processor (or GPU) model, threads, torch version, and
    for a CPU its widest instruction set (:func:`cpu_instruction_set`; absent where unknown)."""
    import platform
    import socket

    if device.type == "cuda":
        model, isa = torch.cuda.get_device_name(device), None
    else:
        cpuinfo = read_cpuinfo()
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                      if line.startswith("model name")), platform.processor() or platform.machine())
        isa = cpu_instruction_set(cpuinfo)
    return {"host": socket.gethostname(), "device": device_description(device), "model": model,
            **({"instruction_set": isa} if isa else {}),
            "threads": torch.get_num_threads(), "torch": str(torch.__version__)}
