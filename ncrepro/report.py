"""What the book's scorecard and status pages read: the values the executed chapters glued, their
execution times, the versions and commit the book was built from.

Every chapter is executed by papermill into ``_build/src/book/<chapter>.ipynb`` before the book
is built (``make book``); each ``glue(name, value)`` there leaves an output that carries the
name and the value's ``repr``. Reading those, rather than recomputing, is what keeps the
scorecard equal to the chapters it summarises.
"""

from __future__ import annotations

import ast
import json
from importlib import metadata
from pathlib import Path

from . import _io
from ._paths import project_root

__all__ = ["EXECUTED_DIR", "read_glued", "chapter_duration", "package_versions", "build_commit"]

#: Where ``make book`` leaves the executed chapters.
EXECUTED_DIR = project_root() / "_build" / "src" / "book"


def _executed(chapter: str, executed_dir: Path | None) -> Path:
    path = Path(executed_dir or EXECUTED_DIR) / f"{chapter}.ipynb"
    if not path.exists():
        raise ValueError(f"{path}: the chapter {chapter!r} has not been executed; run `make book` first")
    return path


def read_glued(chapter: str, executed_dir: Path | None = None) -> dict:
    """``{name: value}`` of every value the executed chapter glued (numbers, strings, booleans)."""
    nb = json.loads(_executed(chapter, executed_dir).read_text())
    values = {}
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            record = output.get("metadata", {}).get("scrapbook")
            if not record:
                continue
            text = output.get("data", {}).get("application/papermill.record/text/plain")
            if text is None:
                continue
            try:
                values[record["name"]] = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                values[record["name"]] = text
    return values


def chapter_duration(chapter: str, executed_dir: Path | None = None) -> float:
    """Seconds papermill took to execute the chapter at book parameters."""
    nb = json.loads(_executed(chapter, executed_dir).read_text())
    return float(nb["metadata"]["papermill"]["duration"])


def package_versions(names=("ncrepro", "torch", "numpy", "scipy", "plotly", "jupyter-book", "myst-nb", "sphinx",
                            "papermill")) -> dict[str, str]:
    """Installed versions of the packages the book depends on ("not installed" where absent)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def build_commit() -> str:
    """The commit of the checkout (``-dirty`` when tracked files differ), or "unknown"."""
    return _io.git_commit()
