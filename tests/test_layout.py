"""The code layout's rules, checked on the source: which package may import which, no import cycles, no private
names imported across modules, one home for each shared helper, and files a reader can hold in their head.

The rules are the ones `ftv_model/__init__.py` and `ftv_train/__init__.py` state. Imports are read with `ast`
(module-level and inside functions alike), so a lazy import does not hide a cycle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT_ROOTS = ("ftv_model", "ftv_train", "app", "benchmarks", "train", "tests")
MAX_LINES = 600
LONG_FILES_ALLOWED = {"ftv_model/modeling_ftv.py"}  # one model family per file, as transformers' modeling_*.py

# ftv_train's layers: a package may import itself and the packages listed (plus ftv_model and third parties).
FTV_TRAIN_ALLOWED = {
    "ftv_train.common": set(),
    "ftv_train.data": {"ftv_train.common"},
    "ftv_train.evaluation.metrics": {"ftv_train.common"},
    "ftv_train.corpus": {"ftv_train.common", "ftv_train.data", "ftv_train.evaluation.metrics"},
    "ftv_train.training": {"ftv_train.common", "ftv_train.data"},
    "ftv_train.evaluation": {"ftv_train.common", "ftv_train.data", "ftv_train.evaluation.metrics"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _source_files() -> dict[str, Path]:
    files = [REPO / "app.py"]
    for root in ("ftv_model", "ftv_train", "benchmarks", "train", "tests"):
        files += sorted((REPO / root).rglob("*.py"))
    return {_module_name(path): path for path in files if "fixtures" not in path.parts}


MODULES = _source_files()


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under `if TYPE_CHECKING:` (annotations only, never run)."""
    nodes: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending += node.orelse
            continue
        pending += list(ast.iter_child_nodes(node))
    return nodes


def _imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, names imported from it) for every import statement in the file."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: list[tuple[str, list[str]]] = []
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names = [alias.name for alias in node.names]
            found.append((module, names))
            # `from pkg import submodule` depends on the submodule too.
            found += [(f"{module}.{n}", []) for n in names if f"{module}.{n}" in MODULES]
    return found


def _project_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in MODULES.items():
        for module, _ in _imports(name, path):
            if module.split(".")[0] in PROJECT_ROOTS and module != name:
                edges[name].add(module)
    return edges


EDGES = _project_edges()


def _layer(module: str) -> str | None:
    if module.startswith("ftv_train.evaluation.metrics"):
        return "ftv_train.evaluation.metrics"
    for layer in FTV_TRAIN_ALLOWED:
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def test_the_model_package_imports_no_training_app_benchmark_or_test_code() -> None:
    bad = {
        (name, dep)
        for name, deps in EDGES.items()
        if name.startswith("ftv_model")
        for dep in deps
        if dep.split(".")[0] in {"ftv_train", "app", "benchmarks", "train", "tests"}
    }
    assert not bad, f"ftv_model must stay loadable alone (a Space, a `from_pretrained` user): {sorted(bad)}"


def test_the_app_is_only_an_interface_over_ftv_model() -> None:
    assert {dep.split(".")[0] for dep in EDGES["app"]} <= {"ftv_model"}


def test_only_tests_import_tests() -> None:
    bad = {(n, d) for n, deps in EDGES.items() if not n.startswith("tests") for d in deps if d.startswith("tests")}
    assert not bad, f"benchmarks and library code must not import test modules: {sorted(bad)}"


def test_training_side_layers_import_only_downwards() -> None:
    bad = []
    for name, deps in EDGES.items():
        layer = _layer(name)
        if layer is None:
            continue
        for dep in deps:
            dep_layer = _layer(dep)
            if dep.startswith("ftv_train") and dep != "ftv_train" and dep_layer != layer:
                if dep_layer not in FTV_TRAIN_ALLOWED[layer]:
                    bad.append(f"{name} -> {dep}")
            if dep == "ftv_train":
                bad.append(f"{name} -> ftv_train (import the subpackage it needs)")
    assert not bad, "imports against ftv_train's layers (see ftv_train/__init__.py):\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    """Depth-first search over project modules; a submodule importing its own package's __init__ counts (it runs
    the __init__, which imports the submodule back)."""
    graph = {name: {d for d in deps if d in MODULES} for name, deps in EDGES.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_names_imported_across_modules() -> None:
    bad = [
        f"{name}: from {module} import {n}"
        for name, path in MODULES.items()
        if not name.startswith("tests")
        for module, names in _imports(name, path)
        if module.split(".")[0] in PROJECT_ROOTS
        for n in names
        if n.startswith("_") and not n.startswith("__")
    ]
    assert not bad, "make these public where they are defined, or move them:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "helper",
    ["resample", "load_audio", "SAMPLE_RATE", "_label", "_resample", "_load_audio", "speech_level"],
)
def test_each_shared_helper_has_one_home(helper: str) -> None:
    homes = []
    for name, path in MODULES.items():
        if name.startswith("tests"):
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == helper:
                homes.append(name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == helper for t in targets):
                    homes.append(name)
    assert len(homes) <= 1, f"{helper} is defined in {homes}: keep one and import it"


def test_files_stay_readable() -> None:
    long = {
        str(path.relative_to(REPO)): n
        for path in MODULES.values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
        and str(path.relative_to(REPO)) not in LONG_FILES_ALLOWED
    }
    assert not long, f"split these by subject (at most {MAX_LINES} lines): {long}"


def test_scripts_are_shims_over_library_entry_points() -> None:
    """Every `train/*.py` only calls a library `main()`, so `python train/x.py`, `accelerate launch train/x.py` and
    the console command `ftv-x` run the same code; none edits `sys.path`."""
    for script in sorted((REPO / "train").glob("*.py")):
        source = script.read_text(encoding="utf-8")
        assert "sys.path" not in source, script.name
        assert "main(" in source, f"{script.name} calls no main()"
        statements = [node for node in ast.parse(source).body if not isinstance(node, ast.Expr)]  # docstring aside
        assert len(statements) <= 3, f"{script.name} holds logic; move it into a library module with main()"
        # worker pools start processes by forkserver/spawn, which re-import the main module: unguarded, every
        # worker ran main() again and `python train/make_offline_corpus.py --workers 2` died at its first pool
        guards = [node for node in statements if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)]
        assert guards and "main(" in ast.unparse(guards[0]), f"{script.name}: call main() under __name__ == '__main__'"


def test_every_library_module_imports() -> None:
    """The rules above read source; this runs it: every module of both packages imports (no dangling name after a
    move), in one process, in sorted order."""
    import importlib

    names = sorted(n for n in MODULES if n.split(".")[0] in ("ftv_model", "ftv_train"))
    for name in names:
        importlib.import_module(name)
