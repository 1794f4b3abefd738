"""The package installs like one: `pip install .` into a fresh environment, then the shipped
`smoke` protocol runs from a folder outside the source tree, with its protocols, results and
cache where an installed package must keep them."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JPEG = ROOT.parent / "shared" / "datasets" / "cifar10-jpeg"


@pytest.mark.skipif(not JPEG.exists(), reason="the offline CIFAR-10 JPEG copy is not beside this checkout")
def test_pip_install_then_smoke_outside_the_source_tree(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The fresh environment borrows this one's dependencies (torch and friends are large), but
    # not its editable ncrepro: a .pth line adds the directory, and the .pth files inside it
    # (the editable install's hook among them) are not processed.
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    build = tmp_path / "src"
    shutil.copytree(ROOT, build, ignore=shutil.ignore_patterns(".venv", "_build", "data", ".git", "*.egg-info",
                                                             "__pycache__", ".pytest_cache"))
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", str(build)],
                   check=True, capture_output=True, text=True)
    shutil.rmtree(build)          # nothing may be read from a source tree any more
    work = tmp_path / "work"
    (tmp_path / "shared" / "datasets").mkdir(parents=True)
    os.symlink(JPEG, tmp_path / "shared" / "datasets" / "cifar10-jpeg")   # the protocol's ../shared/... path
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NCREPRO_")}
    where = subprocess.run([str(python), "-c", "import ncrepro; print(ncrepro.__file__, ncrepro.__version__)"],
                           cwd=work, env=env, check=True, capture_output=True, text=True).stdout
    assert str(venv) in where and "0.2.0" in where
    run = subprocess.run([str(venv / "bin" / "ncrepro-sweep"), "smoke", "--no-progress"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert len(list((work / "data" / "results" / "smoke").glob("*.json"))) == 4
    assert list((work / "data" / "cache").glob("*.npz"))
    listed = subprocess.run([str(venv / "bin" / "ncrepro-sweep"), "smoke", "--list"], cwd=work, env=env,
                            capture_output=True, text=True, check=True).stdout
    assert listed.count("done") == 4
    helped = subprocess.run([str(venv / "bin" / "ncrepro-train"), "--help"], cwd=work, env=env,
                            capture_output=True, text=True, check=True).stdout
    assert "--mse-scale" in helped and "--overwrite" in helped
