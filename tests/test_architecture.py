"""The house rules of ARCHITECTURE.md, checked: every module has its entry there, imports point
down the module map (so no two modules import each other, directly or in a loop), and the
chapters define no functions of their own."""

import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ncrepro"


def _modules() -> dict[str, Path]:
    """Module name (``losses`` for the subpackage) -> file."""
    out = {}
    for path in sorted(PACKAGE.glob("*.py")):
        out[path.stem] = path
    for sub in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").exists()):
        out[sub.name] = sub
    return out


def _map_order() -> list[str]:
    text = (ROOT / "ARCHITECTURE.md").read_text().split("## Around it")[0]
    names = re.findall(r"^\| `ncrepro/([A-Za-z_0-9]+)(?:\.py|/)` \|", text, flags=re.M)
    return names


def _imports(path: Path) -> set[str]:
    """The package modules a module (or every file of a subpackage) imports, lazy imports too."""
    files = [path] if path.is_file() else list(path.glob("*.py"))
    found = set()
    for file in files:
        tree = ast.parse(file.read_text())
        inside = path.is_dir()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                if node.level == 1 and inside:
                    continue  # within the subpackage
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ncrepro."):
                found.add(node.module.split(".")[1])
    return found


def test_every_module_has_its_entry_in_the_map():
    order = _map_order()
    modules = set(_modules())
    assert modules - set(order) == set(), f"modules missing from ARCHITECTURE.md: {sorted(modules - set(order))}"
    assert set(order) - modules == set(), f"ARCHITECTURE.md lists modules that do not exist: {set(order) - modules}"


def test_imports_point_down_the_map():
    order = _map_order()
    rank = {name: i for i, name in enumerate(order)}
    for name, path in _modules().items():
        for target in _imports(path) - {name}:
            assert target in rank, f"{name} imports {target}, which is not in the map"
            assert rank[target] < rank[name], (f"{name} imports {target}, which comes after it in "
                                               f"ARCHITECTURE.md: an import pointing up the map")


def test_no_module_reaches_into_another_modules_private_names():
    for name, path in _modules().items():
        files = [path] if path.is_file() else list(path.glob("*.py"))
        for file in files:
            for node in ast.walk(ast.parse(file.read_text())):
                if (isinstance(node, ast.ImportFrom) and node.level > 0 and node.module
                        and not (path.is_dir() and node.level == 1)):
                    private = [a.name for a in node.names if a.name.startswith("_") and not a.name.endswith("__")]
                    assert not private, f"{file.name} imports private names {private} from {node.module}"
                    assert not (node.module or "").startswith("losses._"), \
                        f"{file.name} reaches into {node.module}, a private module of the losses package"


def _chapter_code_cells():
    """``(notebook file name, cell index, parsed source)`` of every code cell of every chapter."""
    for nb_path in sorted((ROOT / "book").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(nb_path.read_text())["cells"]):
            if cell["cell_type"] == "code":
                yield nb_path.name, i, ast.parse("".join(cell["source"]))


def test_chapters_define_no_functions():
    for name, i, tree in _chapter_code_cells():
        defs = [n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        assert not defs, f"{name}, cell {i}: defines {defs}; move it into the package"


def test_every_table_a_chapter_builds_is_shown():
    """IPython shows only a cell's last top-level expression: an ``html_table(...)`` anywhere else
    (inside an ``if``, or followed by more code) is built and silently dropped unless it is
    passed to ``display``."""
    for name, i, tree in _chapter_code_cells():
        last = tree.body[-1] if tree.body else None
        shown = {id(last.value)} if isinstance(last, ast.Expr) else set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "display":
                shown.update(id(a) for a in node.args)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "html_table":
                assert id(node) in shown, (f"{name}, cell {i}: an html_table that is neither the "
                                           f"cell's last expression nor passed to display() is never shown")


def test_every_chapter_cell_has_a_unique_id():
    """nbformat 4.5 requires a cell id; a cell added by hand without one fails validation later,
    deep in papermill or nbval (a warning made an error), far from its cause."""
    for nb_path in sorted((ROOT / "book").glob("*.ipynb")):
        ids = [cell.get("id") for cell in json.loads(nb_path.read_text())["cells"]]
        missing = [i for i, cell_id in enumerate(ids) if not cell_id]
        assert not missing, f"{nb_path.name}: cells {missing} have no id"
        assert len(set(ids)) == len(ids), f"{nb_path.name}: cell ids repeat"
