"""``orchestrate ssh RUN [MACHINE] [-- COMMAND...]``: a shell on a machine of a run.

The machine is found the way ``down`` finds it (the journal, then the provider rebuilt from the
run's experiment file), and reached with OpenSSH's own client so the terminal works as usual.
The host key stays pinned: the client gets a known_hosts file holding only the key orchestrate
pinned (``StrictHostKeyChecking yes``), never "accept on first use". The shell starts in the
run's workspace on that machine. ``local`` runs get a shell in the workspace here.

Rules: an ``ssh`` run's hosts are yours, so any of them can be entered after the run; an
``aws`` machine must still be running (the journal and EC2 both say so).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from infra.provider import Address
from orchestrator.errors import UnknownRun, UsageError
from orchestrator.state import Journal, MachineStatus


def _pinned_options(address: Address, known_hosts: str) -> list[str]:
    """Port, pinned key file, identity and jump host: what every hop's ssh is given."""
    argv = ["-p", str(address.port), "-o", "StrictHostKeyChecking=yes"]
    argv += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
    if address.key_path:
        argv += ["-i", address.key_path, "-o", "IdentitiesOnly=yes"]
    if address.jump is not None:
        # A ProxyCommand, not -J: ssh's -J child would not get these options (and so would
        # check the jump host against ~/.ssh/known_hosts instead of the pinned key).
        j = address.jump
        hop = ["ssh", "-W", "%h:%p", *_pinned_options(j, known_hosts), f"{j.user}@{j.host}"]
        argv += ["-o", f"ProxyCommand={shlex.join(hop)}"]
    return argv


def ssh_argv(address: Address, known_hosts: str, remote: str) -> list[str]:
    """The OpenSSH command line for ``address`` with its key pinned through ``known_hosts``."""
    target = f"{address.user}@{address.host}"
    return ["ssh", "-t", *_pinned_options(address, known_hosts), target, remote]


def known_hosts_lines(address: Address) -> list[str]:
    """The pinned keys of the host and of its jump hosts, in known_hosts form."""
    lines: list[str] = []
    hop: Address | None = address
    while hop is not None:
        name = hop.host if hop.port == 22 else f"[{hop.host}]:{hop.port}"
        if hop.host_key:
            parts = hop.host_key.split()
            if len(parts) >= 3 and not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
                parts = parts[1:]  # a known_hosts line: drop its own host field
            lines.append(f"{name} {' '.join(parts[:2])}")
        if hop.known_hosts:
            lines += Path(hop.known_hosts).expanduser().read_text().splitlines()
        hop = hop.jump
    return lines


def cmd_ssh(args: argparse.Namespace) -> int:
    """A shell (or one command) on a machine of a run, in the run's workspace there: over
    OpenSSH with the key pinned as the run pinned it, or here for a machine without address."""
    from orchestrator.offers import provider_for_run

    journal = Journal.in_dir(args.state_dir)
    run = journal.run(args.run)
    if run is None:
        raise UnknownRun(f"no run {args.run!r}; see `orchestrate status`")
    machines = journal.machines(args.run)
    live = sorted({m.name for m in machines if m.status == MachineStatus.RUNNING})
    names = sorted({m.name for m in machines})
    name = args.machine
    if name is None:
        pool = live or names  # a run that ended: its machines, where they outlive it
        if len(pool) != 1:
            raise UsageError(
                f"run {args.run} has {len(pool)} machine(s) to enter ({', '.join(pool) or 'none'})"
                "; name one: orchestrate ssh RUN MACHINE"
            )
        name = pool[0]
    elif name not in names:
        raise UsageError(f"run {args.run} has no machine {name!r} (machines: {', '.join(names)})")
    machine = provider_for_run(run, state_dir=args.state_dir).locate(run.id, name)
    if machine is None:
        raise UsageError(f"machine {name!r} of run {args.run} is no longer running")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    ws_root = f"{machine.workspace_root}/{run.id}"
    if machine.address is None:  # this machine
        ws = Path(ws_root)
        argv = command or [os.environ.get("SHELL", "/bin/sh")]
        return subprocess.call(argv, cwd=ws if ws.is_dir() else None)
    address = machine.address
    if shutil.which("ssh") is None:
        raise UsageError("the OpenSSH client (ssh) is not installed here")
    inner = shlex.join(command) if command else 'exec "${SHELL:-/bin/sh}" -l'
    remote = f"cd {shlex.quote(ws_root)} 2>/dev/null || cd; {inner}"
    with tempfile.TemporaryDirectory(prefix="orchestrate-ssh-") as tmp:
        known = Path(tmp) / "known_hosts"
        known.write_text("\n".join(known_hosts_lines(address)) + "\n")
        argv = ssh_argv(address, str(known), remote)
        if command:  # a command, not a terminal session: no tty, never a prompt
            argv[argv.index("-t")] = "-oBatchMode=yes"
        return subprocess.call(argv)


def add_ssh_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``ssh``."""
    p = sub.add_parser(
        "ssh", parents=[common], help="a shell on a machine of a run (host key pinned)"
    )
    p.add_argument("run", help="a run id (see `orchestrate status`)")
    p.add_argument("machine", nargs="?", help="which machine (default: the run's only one)")
    p.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        help="MACHINE -- CMD ...: run CMD in the workspace instead of a shell",
    )
    p.set_defaults(func=cmd_ssh)
