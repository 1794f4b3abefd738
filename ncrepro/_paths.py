"""Where ncrepro finds and keeps things (private).

* Protocols ship with the package (``ncrepro/protocols/*.json``), so an installed copy has them.
* Results and the decoded-image cache live under a *project folder*: ``$NCREPRO_HOME`` if set;
  else the source checkout the package runs from (an editable install, or a copy of the tree on a
  GPU machine); else the current working directory. ``$NCREPRO_RESULTS`` and ``$NCREPRO_CACHE``
  override the two folders one by one.
* Relative dataset paths are tried from the working directory first, then from the project
  folder (protocols name paths relative to the repository).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROTOCOL_DIR = PACKAGE_DIR / "protocols"
_CHECKOUT = PACKAGE_DIR.parent


def in_checkout() -> bool:
    """True when the package runs from a source checkout (the tree with pyproject.toml and book/)."""
    return (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "book").is_dir()


def project_root() -> Path:
    if os.environ.get("NCREPRO_HOME"):
        return Path(os.environ["NCREPRO_HOME"])
    return _CHECKOUT if in_checkout() else Path.cwd()


def results_root() -> Path:
    """``$NCREPRO_RESULTS``, else ``<project>/data/results``."""
    if os.environ.get("NCREPRO_RESULTS"):
        return Path(os.environ["NCREPRO_RESULTS"])
    return project_root() / "data" / "results"


def cache_root() -> Path:
    """``$NCREPRO_CACHE``, else ``<project>/data/cache``."""
    if os.environ.get("NCREPRO_CACHE"):
        return Path(os.environ["NCREPRO_CACHE"])
    return project_root() / "data" / "cache"


def resolve_data_path(spec: str | os.PathLike) -> Path:
    """A dataset path as given, or relative to the project folder when that is where it exists."""
    path = Path(spec)
    if path.is_absolute() or path.exists():
        return path
    candidate = project_root() / path
    return candidate if candidate.exists() else path
