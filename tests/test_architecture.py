"""The package's layers import only the layers below them (README, "Architecture"), and the
recipes and scripts import the installed package, never a path they add themselves."""

import ast
import re

import pytest

from helpers import REPO_ROOT

PACKAGE = REPO_ROOT / "brq_att_alt"
# bottom to top, as in the README: a module may import its own layer and the ones before it
LAYERS = [
    ("base", {"padding", "layers", "masking", "quantizer", "text", "wer", "csv_files", "ngram", "checkpointing", "hparams",
              "train_logger"}),
    ("data", {"data"}),
    ("mixers", {"mixers"}),
    ("model", {"conformer", "frontend", "features", "model", "sizes"}),
    ("use", {"pretrained", "training", "ctc_decoding", "asr", "interfaces", "inference", "transcribe", "export"}),
    ("probes", {"probes"}),
    ("benchmarking", {"benchmarking"}),
    ("reproduction", {"reproduce"}),
]


def layer_of(name: str) -> int:
    """Layer index of a top-level name of the package (a module or a sub-package)."""
    for index, (_, names) in enumerate(LAYERS):
        if name in names:
            return index
    raise AssertionError(f"brq_att_alt.{name} is in no layer: add it to the README's Architecture section "
                         "and to LAYERS in this test")


def package_imports(path):
    """Top-level package names (``model``, ``data``, ...) a module of brq_att_alt imports."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's own package
                base = list(parts[:-1])[: len(parts) - node.level]
                target = base + (node.module.split(".") if node.module else [])
                if not target:  # "from . import x" at the top level
                    target = [alias.name for alias in node.names]
            elif (node.module or "").startswith("brq_att_alt."):
                target = node.module.split(".")[1:]
            else:
                continue
            names.add(target[0])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("brq_att_alt.")}
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_layer_imports_only_the_layers_below(path):
    own_name = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    if own_name == "__init__":
        return
    own = layer_of(own_name)
    for name in package_imports(path) - {own_name}:
        assert layer_of(name) <= own, (f"{path.relative_to(REPO_ROOT)} ({LAYERS[own][0]}) imports brq_att_alt.{name} "
                                       f"({LAYERS[layer_of(name)][0]}), a layer above it")


def test_every_module_is_in_a_layer():
    for path in PACKAGE.iterdir():
        if path.name != "__init__.py" and (path.suffix == ".py" or (path / "__init__.py").is_file()):
            layer_of(path.name.removesuffix(".py"))


def test_recipes_scripts_and_tests_edit_no_import_path():
    edits = re.compile(r"sys\.path\.(insert|append)|sys\.path\s*=|[\"']PYTHONPATH[\"']")
    offenders = [f"{p.relative_to(REPO_ROOT)}" for folder in ("recipes", "scripts", "tests", "brq_att_alt")
                 for p in (REPO_ROOT / folder).rglob("*.py") if p.name != "test_architecture.py"
                 and edits.search(p.read_text(encoding="utf-8"))]
    offenders += [name for name in ("train.py",) if edits.search((REPO_ROOT / name).read_text(encoding="utf-8"))]
    assert not offenders
