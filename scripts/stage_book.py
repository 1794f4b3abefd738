"""Stage the book's sources for `jupyter-book build` (called by `make book`).

Copies _config.yml, _toc.yml and the book's Markdown pages, images and local extension into
_build/src (papermill writes the executed notebooks there), and plotly.js and MathJax from the
installed Python packages into _build/src/_vendor, which Sphinx serves as _static: the built
HTML needs no network. Files are copied only when their
content changed, so Sphinx's incremental build stays quick.
"""

from __future__ import annotations

import filecmp
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "_build" / "src"
VENDOR = SRC / "_vendor"


def copy_if_changed(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists() or not filecmp.cmp(src, dst, shallow=False):
        shutil.copy2(src, dst)


def write_if_changed(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def build_identity() -> str:
    """``ncrepro <version>, commit <sha>`` of the tree the book is built from."""
    from ncrepro import __version__
    from ncrepro.report import build_commit

    return f"ncrepro {__version__}, commit {build_commit()[:10]}{'-dirty' if build_commit().endswith('-dirty') else ''}"


def config_with_footer() -> str:
    """_config.yml with a footer naming the version and commit on every page."""
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    # Into the theme options themselves: `sphinx.config.html_theme_options` replaces the
    # options Jupyter Book derives from `html:`, so `html.extra_footer` would be dropped.
    theme_options = config.setdefault("sphinx", {}).setdefault("config", {}).setdefault("html_theme_options", {})
    theme_options["extra_footer"] = (
        f'<p class="ncrepro-build">Built from {build_identity()}. '
        # Every page lives in book/, beside the status page.
        f'<a href="status.html">Status</a>: execution times, versions, devices.</p>')
    header = "# Staged by scripts/stage_book.py from the repository's _config.yml.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def main() -> int:
    import mathjax
    import plotly

    copy_if_changed(ROOT / "_toc.yml", SRC / "_toc.yml")
    write_if_changed(SRC / "_config.yml", config_with_footer())
    for pattern in ("*.md", "*.png", "*.bib", "_ext/*.py"):
        for f in (ROOT / "book").glob(pattern):
            copy_if_changed(f, SRC / "book" / f.relative_to(ROOT / "book"))
    for name in ("ncrepro-theme.js", "ncrepro.css"):
        copy_if_changed(ROOT / "book" / "_ext" / name, VENDOR / name)
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    copy_if_changed(plotly_js, VENDOR / "plotly.min.js")
    mathjax_es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (mathjax_es5 / "tex-chtml.js").exists():
        print(f"stage_book: MathJax not found at {mathjax_es5}", file=sys.stderr)
        return 1
    for f in mathjax_es5.rglob("*"):
        if f.is_file():
            copy_if_changed(f, VENDOR / "mathjax" / f.relative_to(mathjax_es5))
    # Notebooks removed from book/ must not linger in the staged tree.
    for nb in (SRC / "book").glob("*.ipynb"):
        if not (ROOT / "book" / nb.name).exists():
            nb.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
