import json

import nbformat
import pytest

from ncrepro import report


def executed_notebook(path, glued, duration=12.5):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    for name, value in glued.items():
        cell.outputs.append(nbformat.v4.new_output(
            "display_data", data={"application/papermill.record/text/plain": repr(value)},
            metadata={"scrapbook": {"name": name, "data": True, "display": False}}))
    nb.cells.append(cell)
    nb.metadata["papermill"] = {"duration": duration}
    path.write_text(json.dumps(nb))


def test_read_glued_and_duration(tmp_path):
    executed_notebook(tmp_path / "theory.ipynb", {"worst": 1.5e-16, "label": "K = 10", "flag": True, "n": 3})
    assert report.read_glued("theory", tmp_path) == {"worst": 1.5e-16, "label": "K = 10", "flag": True, "n": 3}
    assert report.chapter_duration("theory", tmp_path) == 12.5
    with pytest.raises(ValueError, match="make book"):
        report.read_glued("landscape", tmp_path)


def test_versions_and_commit():
    versions = report.package_versions(("numpy", "no-such-package-xyz"))
    assert versions["numpy"][0].isdigit() and versions["no-such-package-xyz"] == "not installed"
    assert report.build_commit()
