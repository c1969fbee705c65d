"""Every image installs what the trainers import: a module missing on the instance fails a task
only after the machine is paid for and set up (CI caught exactly that with threadpoolctl)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from ami.spec import load_specs
from ami.stages import distribution

TRAINERS = Path(__file__).resolve().parents[2] / "trainers"
# The import name of each third-party module the trainers use -> the distributions providing it.
PROVIDERS = {
    "numpy": {"numpy"},
    "tensorflow": {"tensorflow", "tensorflow-cpu"},
    "pytensor": {"pytensor"},
    "threadpoolctl": {"threadpoolctl"},
    "numba": {"numba"},
    "llvmlite": {"numba"},  # numba's own dependency
    "scipy_openblas32": {"scipy-openblas32"},
    "jax": {"jax"},
}
GPU_ONLY = {"jax"}  # imported only on the --device gpu path


def third_party_imports() -> set[str]:
    found: set[str] = set()
    for path in TRAINERS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"trainers"}


def test_every_third_party_import_of_the_trainers_has_a_known_provider() -> None:
    unknown = third_party_imports() - PROVIDERS.keys()
    assert not unknown, f"add these to PROVIDERS and to every image spec: {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(load_specs()))
def test_each_bundled_image_installs_what_the_trainers_import(name: str) -> None:
    spec = load_specs()[name]
    installed = {distribution(p) for p in spec.packages}
    wanted = third_party_imports() - (GPU_ONLY if spec.flavour == "cpu" else set())
    missing = [m for m in sorted(wanted) if not PROVIDERS.get(m, {m}) & installed]
    assert not missing, f"{name} lacks {missing}: its packages are {sorted(installed)}"


@pytest.mark.parametrize("script", ["cpu.sh", "cuda.sh"])
def test_setup_defaults_match_the_bundled_spec(script: str) -> None:
    flavour = script.removesuffix(".sh")
    text = (Path(__file__).resolve().parents[2] / "ami" / "setup" / script).read_text()
    default = re.search(r'set -- ((?:"[^"]+" ?)+); fi', text)
    assert default, script
    defaults = {distribution(p) for p in re.findall(r'"([^"]+)"', default.group(1))}
    spec = next(s for s in load_specs().values() if s.flavour == flavour)
    assert defaults == {distribution(p) for p in spec.packages} - {"numpy"}
