"""The package version, written once, in pyproject.toml (private)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path


def _version() -> str:
    try:
        return metadata.version("ncrepro")
    except metadata.PackageNotFoundError:
        # Running from a source tree that was never installed (a copy on a GPU machine).
        import tomllib

        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            return tomllib.loads(pyproject.read_text())["project"]["version"]
        except (OSError, KeyError, ValueError):
            return "0+unknown"


__version__ = _version()
