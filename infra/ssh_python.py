"""``python: auto`` on an ssh host: a venv in the host's workspace with the trainers' packages.

Instead of failing with "pytensor is not installed", the host gets what an EC2 machine of the
matching image spec gets (the package list of the bundled ``ami/specs`` spec of the host's
flavour: ``cuda`` for a host with GPUs, ``cpu`` otherwise). Rules:

1. The venv is ``<workspace_root>/venv``, made by the host's ``python3`` with
   ``--system-site-packages`` (what the host already has counts; nothing needs root).
2. Packages are installed once per package list (a marker holds its hash); a later run with
   the same list only checks the venv is there.
3. ``$ORCHESTRATE_AUTO_PACKAGES`` (space-separated) replaces the list: a site mirror, pinned
   versions, or nothing at all (tests).
"""

from __future__ import annotations

import hashlib
import os
import shlex
from dataclasses import replace

from infra.errors import CommandFailed, ProviderError
from infra.provider import Machine
from infra.transport.base import Transport

AUTO = "auto"
PACKAGES_ENV = "ORCHESTRATE_AUTO_PACKAGES"
MARKER = ".orchestrate-packages"


def auto_packages(gpus: int) -> list[str]:
    """Rule 3, else the bundled image spec's packages for the host's flavour."""
    env = os.environ.get(PACKAGES_ENV)
    if env is not None:
        return env.split()
    from ami.spec import load_specs

    flavour = "cuda" if gpus else "cpu"
    specs = [s for _, s in sorted(load_specs().items()) if s.flavour == flavour]
    if not specs:
        raise ProviderError(f"no bundled image spec of flavour {flavour!r} to take packages from")
    return list(specs[0].packages)


def venv_script(venv: str, packages: list[str], base: str = "python3") -> str:
    """The idempotent shell script of rules 1 and 2; prints the venv's absolute path last."""
    digest = hashlib.sha256("\n".join(packages).encode()).hexdigest()[:16]
    v, marker = shlex.quote(venv), shlex.quote(f"{venv}/{MARKER}")
    install = (
        f"{v}/bin/python -m pip install -q --disable-pip-version-check {shlex.join(packages)}"
        if packages
        else "true"
    )
    return (
        "set -e\n"
        f"mkdir -p {v}\n"
        f"[ -x {v}/bin/python ] || {shlex.quote(base)} -m venv --system-site-packages {v}\n"
        f'if [ "$(cat {marker} 2>/dev/null)" != {digest} ]; then\n'
        f"  {install}\n"
        f"  printf %s {digest} > {marker}\n"
        "fi\n"
        f"cd {v} && pwd\n"
    )


def auto_python(machine: Machine, transport: Transport) -> Machine:
    """The machine with its trainer interpreter set to the venv of rule 1, made if needed."""
    venv = f"{machine.workspace_root}/venv"
    script = venv_script(venv, auto_packages(machine.gpus))
    try:
        result = transport.run(["sh", "-c", script], timeout_s=3600)
    except CommandFailed as exc:
        raise ProviderError(
            f"python: auto on {machine.name}: making {venv} failed "
            f"(exit {exc.result.exit_code}): {exc.result.tail()}"
        ) from exc
    where = result.stdout.strip().splitlines()[-1]
    return replace(machine, python=f"{where}/bin/python")
