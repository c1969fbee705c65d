"""A fresh machine's setup in stages, one framework each, so that its first task starts once
its own framework is installed rather than once every framework is (issue 18, item 4).

The stage of the framework the machine's first task needs comes first; the image's other
packages (NumPy) go with it. Each finished stage leaves a marker file named after its framework
in the ready folder, the last one ``all``, and a failure leaves ``failed`` (holding the exit
code): a task waits for its framework's marker and gives up on ``failed``. Every stage installs
pinned to one resolution of all of them, so a later stage never moves a package that a running
task of an earlier one uses (TensorFlow pinning another NumPy, say). The markers live
under /tmp, so a rebooted or baked machine never shows a stale one.

A spec is not staged where staging could start a task too early: one framework only (nothing
to gain), or its own ``setup`` steps (any task may need what they install).
"""

from __future__ import annotations

import re
import shlex

from ami.spec import ImageSpec
from ami.userdata import flavour_call, setup_preamble

READY_DIR = "/tmp/orchestrate-ready"  # the default; each bootstrap passes a folder of its own
ALL = "all"  # every stage done: what a task of no framework waits for (a script, a job's setup)
FAILED = "failed"
PINS = "pins.txt"  # the joint resolution the stages install from (not a framework's marker)

# A requirement's distribution name -> the trainers' framework it belongs to.
FRAMEWORK_OF = {
    "tensorflow": "tensorflow",
    "tensorflow-cpu": "tensorflow",
    "pytensor": "theano",
    "numba": "theano",
    "threadpoolctl": "theano",
    "scipy-openblas32": "theano",
    "jax": "theano",
}


def distribution(requirement: str) -> str:
    """``tensorflow[and-cuda]>=2.16`` -> ``tensorflow``: the name, normalised as pip does."""
    match = re.match(r"[A-Za-z0-9_.-]+", requirement.strip())
    return (match.group(0) if match else requirement).lower().replace("_", "-")


def stages(spec: ImageSpec, first: str | None) -> list[tuple[str, tuple[str, ...]]]:
    """(framework, requirements) per stage: ``first``'s stage first, the others in the spec's
    order; packages of no framework ride with the first stage."""
    groups: dict[str, list[str]] = {}
    common: list[str] = []
    for requirement in spec.packages:
        framework = FRAMEWORK_OF.get(distribution(requirement))
        (groups.setdefault(framework, []) if framework else common).append(requirement)
    order = sorted(groups, key=lambda f: f != first)  # stable: the spec's order otherwise
    out = [(f, tuple(groups[f])) for f in order]
    if out:
        out[0] = (out[0][0], (*common, *out[0][1]))
    return out


def staged_setup_commands(
    spec: ImageSpec, first: str | None, ready_dir: str = READY_DIR
) -> str | None:
    """The setup script of ``spec`` run stage by stage with its markers in ``ready_dir``; None
    when ``spec`` is not to be staged (see the module's docstring): run `setup_commands`.

    A folder per setup: a setup still running from an earlier attempt (an orchestrator that
    died mid-setup, then ``attach``) must not clear or mark the new one's folder."""
    plan = stages(spec, first)
    if len(plan) < 2 or spec.setup:
        return None
    ready = shlex.quote(ready_dir)
    lines = [
        *setup_preamble(spec),
        f"mkdir -p {ready}",
        # One resolution of every stage's packages, each stage pinned to it (common.sh).
        f"export ORCHESTRATE_SETUP_ALL={shlex.quote(chr(10).join(spec.packages))}",
        f"export ORCHESTRATE_SETUP_LOCK={shlex.quote(f'{ready_dir}/{PINS}')}",
        # Any failure, at any stage, leaves its exit code where waiting tasks look.
        f'trap \'rc=$?; [ "$rc" = 0 ] || echo "$rc" > {ready}/{FAILED}\' EXIT',
    ]
    for framework, requirements in plan:
        lines += [
            flavour_call(spec, requirements),
            f"touch {ready}/{framework}",
            f'echo "orchestrate setup: {framework} ready $(date -u +%FT%T.%NZ)"',
        ]
    lines.append(f"touch {ready}/{ALL}")
    return "\n".join(lines) + "\n"
