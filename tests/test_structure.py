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
    "configs": {"configs", "sampling.options"},
    "data": {"data", "utils"},
    "layers": {"layers", "utils"},
    "models": {"models", "layers", "data", "utils"},
    "checkpoints": {"checkpoints", "models", "layers", "configs", "demo", "utils"},
    "train": {"train", "checkpoints", "models", "data", "configs", "utils"},
    "sampling": {"sampling", "checkpoints", "models", "layers", "data", "configs", "utils"},
    "icolorit": {"icolorit", "utils", "data.decode", "data.sources", "configs", "demo"},
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
