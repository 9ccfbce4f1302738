"""Packaging: pyproject.toml declares what the package imports (no more, no less), floors at
least SpeechBrain's own, and the known-good pins of requirements.txt inside those ranges."""

import ast
import importlib.metadata as metadata
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# distribution name -> the module it installs, where they differ
MODULE_OF = {"pyyaml": "yaml", "espeakng-loader": "espeakng_loader", "mamba-ssm": "mamba_ssm",
             "causal-conv1d": "causal_conv1d"}


def _module(requirement: str) -> str:
    name = Requirement(requirement).name.lower()
    return MODULE_OF.get(name, name.replace("-", "_"))


def _floor(requirement: Requirement):
    floors = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==", "~=")]
    return max(floors) if floors else None


def package_imports() -> set:
    """Top-level third-party modules imported anywhere in brq_att_alt (lazy imports included)."""
    names = set()
    for path in (REPO / "brq_att_alt").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "brq_att_alt"}


def test_build_system_and_python_floor():
    assert PYPROJECT["build-system"]["build-backend"] == "setuptools.build_meta"
    spec = PYPROJECT["project"]["requires-python"]
    assert spec == ">=3.10"
    listed = {c.rsplit(" :: ", 1)[1] for c in PYPROJECT["project"]["classifiers"]
              if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    assert min(listed, key=Version) == "3.10"  # the classifiers start where requires-python does


def test_declared_dependencies_are_the_imported_ones():
    declared = {_module(r) for r in PYPROJECT["project"]["dependencies"]}
    extras = {_module(r) for reqs in PYPROJECT["project"]["optional-dependencies"].values() for r in reqs}
    imported = package_imports()
    assert declared - imported == set(), "declared but never imported by the package"
    assert imported - declared - extras == set(), "imported but declared nowhere"


def test_floors_are_at_least_speechbrains():
    ours = {Requirement(r).name.lower(): Requirement(r) for r in PYPROJECT["project"]["dependencies"]}
    checked = 0
    for text in metadata.requires("speechbrain"):
        theirs = Requirement(text)
        if theirs.marker is not None or theirs.name.lower() not in ours:
            continue
        their_floor, our_floor = _floor(theirs), _floor(ours[theirs.name.lower()])
        if their_floor is not None and theirs.name.lower() in ("torch", "torchaudio", "scipy", "soundfile", "tqdm",
                                                               "numpy"):
            assert our_floor is not None and our_floor >= their_floor, (theirs, ours[theirs.name.lower()])
            checked += 1
    assert checked >= 4  # torch, torchaudio, scipy, soundfile, tqdm, numpy are all SpeechBrain's too


def test_requirement_pins_lie_inside_the_declared_ranges():
    ours = {Requirement(r).name.lower(): Requirement(r) for r in PYPROJECT["project"]["dependencies"]}
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            pin = [s.version for s in req.specifier if s.operator == "=="]
            if pin:
                pins[req.name.lower()] = pin[0]
    assert {"torch", "torchaudio", "speechbrain"} <= set(pins)
    for name, version in pins.items():
        if name in ours:
            assert ours[name].specifier.contains(version), (name, version, str(ours[name].specifier))
