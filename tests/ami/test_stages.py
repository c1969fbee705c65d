"""The staged setup's plan and script (``ami.stages``); the instance emulator runs it for real
(tests/instances/test_setup_and_bake.py)."""

from __future__ import annotations

import dataclasses
import re
import subprocess

import pytest

from ami.spec import load_specs
from ami.stages import ALL, FAILED, PINS, READY_DIR, staged_setup_commands, stages


@pytest.mark.parametrize("name", sorted(load_specs()))
@pytest.mark.parametrize("first", ["theano", "tensorflow"])
def test_the_first_tasks_framework_goes_first_with_the_common_packages(
    name: str, first: str
) -> None:
    spec = load_specs()[name]
    plan = stages(spec, first)
    assert [f for f, _ in plan][0] == first and len(plan) == 2
    assert any(r.startswith("numpy") for r in plan[0][1])  # needed by either framework
    assert sorted(r for _, rs in plan for r in rs) == sorted(spec.packages)  # nothing lost


def test_no_first_keeps_the_specs_order() -> None:
    spec = load_specs()["ubuntu24-cpu"]
    assert [f for f, _ in stages(spec, None)] == ["tensorflow", "theano"]


def test_a_spec_with_its_own_steps_or_one_framework_is_not_staged() -> None:
    spec = load_specs()["ubuntu24-cpu"]
    assert (
        staged_setup_commands(dataclasses.replace(spec, setup=("apt-get install -y jq",)), "theano")
        is None
    )
    one = dataclasses.replace(spec, packages=("tensorflow-cpu>=2.16", "numpy>=1.26"))
    assert staged_setup_commands(one, "tensorflow") is None


def test_the_script_marks_each_stage_after_installing_it() -> None:
    script = staged_setup_commands(load_specs()["ubuntu24-cpu"], "theano")
    assert script is not None
    assert subprocess.run(["bash", "-n", "-c", script], check=False).returncode == 0
    steps = [
        line
        for line in script.splitlines()
        if line.startswith(("bash /tmp/orchestrate-setup-flavour.sh", f"touch {READY_DIR}/"))
    ]
    assert steps[1] == f"touch {READY_DIR}/theano" and "pytensor" in steps[0]
    assert "tensorflow" not in steps[0]
    assert steps[3] == f"touch {READY_DIR}/tensorflow" and "tensorflow-cpu" in steps[2]
    assert steps[4] == f"touch {READY_DIR}/{ALL}"
    assert f"> {READY_DIR}/{FAILED}" in script
    # Every stage installs pinned to one resolution of all the spec's packages.
    assert f"export ORCHESTRATE_SETUP_LOCK={READY_DIR}/{PINS}" in script
    exported = re.search(r"ORCHESTRATE_SETUP_ALL='([^']*)'", script)
    assert exported and exported.group(1).splitlines() == list(
        load_specs()["ubuntu24-cpu"].packages
    )
