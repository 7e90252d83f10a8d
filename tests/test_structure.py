"""The package's structure: dependencies point one way (layers <- models <-
checkpoints <- train, sampling <- commands and app), iColoriT imports nothing
of ColTran's, and no module patches sys.path."""

import ast
import os

import pytest

from conftest import REPO_ROOT

PACKAGE = os.path.join(REPO_ROOT, "coltran_tf")

# package (or top-level module) -> what it may import from coltran_tf
ALLOWED = {
    "utils": {"utils"},
    "configs": {"configs"},
    "data": {"data", "utils"},
    "layers": {"layers", "utils"},
    "models": {"models", "layers", "data", "configs", "utils"},
    "checkpoints": {"checkpoints", "models", "layers", "configs", "demo", "utils"},
    "train": {"train", "checkpoints", "models", "data", "configs", "utils"},
    "sampling": {"sampling", "checkpoints", "models", "layers", "data", "configs", "utils"},
    "icolorit": {"icolorit", "utils", "data.decode", "data.sources", "configs", "demo",
                 "train.loop"},
    "evaluation": {"evaluation", "data", "sampling.records", "sampling.sheets", "utils"},
    "demo": {"configs"},
}


def _modules():
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                yield os.path.relpath(path, PACKAGE)[:-3].replace(os.sep, "."), path


def _imports(path):
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith("coltran_tf"):
            module = node.module[len("coltran_tf."):]
            for alias in node.names:  # `from coltran_tf.data import decode`: data.decode
                yield f"{module}.{alias.name}".lstrip("."), node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("coltran_tf."):
                    yield alias.name[len("coltran_tf."):], node.lineno


def _allowed(target: str, rules: set) -> bool:
    return any(target == rule or target.startswith(rule + ".") for rule in rules)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_dependencies_point_one_way(package):
    wrong = [f"{module}:{line} imports coltran_tf.{target}"
             for module, path in _modules() if module.split(".")[0] == package
             for target, line in _imports(path) if not _allowed(target, ALLOWED[package])]
    assert not wrong, "\n".join(wrong)


def test_no_module_patches_sys_path():
    patched = [module for module, path in _modules() if "sys.path" in open(path).read()]
    assert not patched


def _module_of(target: str, known: set) -> str | None:
    """`data.decode.to_rgb` -> `data.decode` (the longest known module prefix)."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return None


def test_no_circle_of_imports():
    """No two modules import each other, directly or around a circle, counting
    imports inside functions too (a deferred import hides a circle, it does not
    remove it)."""
    modules = dict(_modules())
    known = set(modules)
    graph = {module: {m for target, _ in _imports(path)
                      if (m := _module_of(target, known)) and m != module
                      and not m.endswith("__init__")}
             for module, path in modules.items()}
    # Tarjan's strongly connected components, iteratively.
    index, low, stack, on_stack, circles, counter = {}, {}, [], set(), [], [0]

    def visit(root):
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        circles.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert not circles, circles


def test_the_stage_table_is_the_only_one():
    """No module but configs/stages.py writes down two stages' names together
    (a tuple, list, set or dict of them is another stage table)."""
    from coltran_tf.configs.stages import MODEL_NAMES, NAMES

    names = set(NAMES) | set(MODEL_NAMES)
    tables = []
    for module, path in _modules():
        if module == "configs.stages":
            continue
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
                values = node.keys if isinstance(node, ast.Dict) else node.elts
                found = {v.value for v in values if isinstance(v, ast.Constant)} & names
                if len(found) >= 2:
                    tables.append(f"{module}:{node.lineno}: {sorted(found)}")
    assert not tables, "\n".join(tables)


def test_the_package_top_holds_no_library_module():
    """Commands live in coltran_tf/commands/, library modules in their packages."""
    top = [name for name in os.listdir(PACKAGE)
           if name.endswith(".py") and name != "__init__.py"]
    assert not top, top


def test_the_training_loop_is_family_neutral():
    """train/loop.py, which iColoriT trains on too, imports nothing but utils."""
    wrong = [f"train.loop:{line} imports coltran_tf.{target}"
             for target, line in _imports(os.path.join(PACKAGE, "train", "loop.py"))
             if not _allowed(target, {"utils"})]
    assert not wrong, "\n".join(wrong)


def test_a_missing_shared_folder_fails_under_ci_and_skips_elsewhere(monkeypatch):
    """The oracle fixtures cannot silently vanish from CI (.ci/run sets CI=true)."""
    import conftest

    monkeypatch.setattr(conftest, "SHARED", "/nonexistent/shared")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must provide it"):
        conftest.require_fixtures("tiny")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="not found at /nonexistent/shared"):
        conftest.require_fixtures("tiny")
