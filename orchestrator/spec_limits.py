"""Bounds and rules on a schema-valid experiment that pydantic's types cannot say.

Why: a file can be well-typed and still ask for a billion tasks, a year-long budget window,
an SSH host with an empty name, or a ``run:`` command whose placeholders break out of their
quoting. Each rule gives a located issue; nothing here touches a machine.

  1. Budget, deadlines and timeouts have sane maxima (``MAXIMA``).
  2. The matrix has between 1 and ``MAX_TASKS`` tasks per job and in all (counted without
     expanding it); task ids and the name fit in directory names; ``ssh_cidr`` is a CIDR.
  3. SSH host fields that are given are not blank; ``host`` is a host name or address (never
     an option such as ``-oProxyCommand``); ``host_key`` has the shape of a public key line.
     (Whether a host key is pinned at all, and whether key files exist, is for where the ssh
     config is resolved: it may supply ``IdentityFile`` and ``UserKnownHostsFile``.)
  4. In ``run:`` only ``{name}`` (a param's name) is a placeholder: positional ``{0}``/``{}``,
     attribute or index access and format specs are refused. A placeholder inside quotes
     (``'{v}'``, ``"{v}"``) is refused too: values are already shell-quoted, and quoting them
     again undoes that.
  5. ``nodes: N > 1`` (one task on N machines at once) needs a runtime that spans machines:
     TensorFlow's MultiWorkerMirroredStrategy or the user's own ``run:`` command. PyTensor has
     none and the PCA trainer is single-process, so those are refused; on ``provider: ssh`` the
     inventory must hold N hosts that fit the job's device, or the task could never start; on
     ``local`` a ``run:`` job has one slot (its commands share the workdir).
"""

from __future__ import annotations

import base64
import ipaddress
import math
import re
import string
from collections.abc import Callable, Iterator

from infra.registry import LocalConfig, SshConfig
from orchestrator.errors import SpecIssue
from orchestrator.matrix import AXES, expand
from orchestrator.spec import Experiment, Host, JobSpec

MAX_TASKS = 10_000
MAX_TASK_ID = 200  # bytes; a directory name may have 255
MAX_NAME = 100  # the run id (name + time + suffix) names a directory too
MAXIMA: dict[tuple[str, ...], float] = {
    ("budget", "max_hours"): 24 * 31,  # a month; a longer window is a typo, not a plan
    ("budget", "max_usd"): 100_000,
    ("connect_deadline_s",): 24 * 3600,
}
MAX_TIMEOUT_MINUTES = 7 * 24 * 60

Issue = Callable[[tuple[str | int, ...], str, str | None], SpecIssue]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOST = re.compile(r"^[A-Za-z0-9_.:%\[\]][A-Za-z0-9_.:%\[\]-]*$")  # a name, IPv4/6, or an alias


def limit_issues(exp: Experiment, issue: Issue) -> Iterator[SpecIssue]:
    """Rules 1-3; ``issue(loc, message, hint)`` locates each."""
    for loc, top in MAXIMA.items():
        value: object = exp
        for part in loc:
            value = getattr(value, part)
        if isinstance(value, int | float) and value > top:
            yield issue(loc, f"{value:g} is over the limit of {top:g}", None)
    total = 0
    for i, job in enumerate(exp.jobs):
        if job.timeout_minutes is not None and job.timeout_minutes > MAX_TIMEOUT_MINUTES:
            yield issue(
                ("jobs", i, "timeout_minutes"),
                f"{job.timeout_minutes:g} is over the limit of {MAX_TIMEOUT_MINUTES} (a week)",
                None,
            )
        n = matrix_size(job)
        total += n
        if n == 0:
            yield issue(
                ("jobs", i), "this job has an empty axis, so no tasks", "give each list a value"
            )
        if n > MAX_TASKS:
            yield issue(
                ("jobs", i), f"this job expands to {n:.3g} tasks; the limit is {MAX_TASKS}", None
            )
    if total > MAX_TASKS:
        yield issue(("jobs",), f"{total} tasks in all; the limit is {MAX_TASKS}", None)
    else:
        for task in expand(exp):
            if len(task.id.encode()) > MAX_TASK_ID:
                yield issue(
                    ("jobs", task.job_index),
                    f"task id {task.id[:40]!r}... is over {MAX_TASK_ID} bytes",
                    "give the job a shorter name:, or shorter param values",
                )
                break
    if len(exp.name) > MAX_NAME:
        yield issue(("name",), f"the name is over {MAX_NAME} characters", None)
    if exp.ssh_cidr is not None:
        try:
            ipaddress.ip_network(exp.ssh_cidr, strict=False)
        except ValueError as exc:
            yield issue(("ssh_cidr",), f"not a CIDR: {exc}", "e.g. 203.0.113.7/32")
    for h, host in enumerate(exp.hosts):
        yield from _host_issues(host, ("hosts", h), issue)
    for i, job in enumerate(exp.jobs):
        yield from _nodes_issues(exp, job, ("jobs", i, "nodes"), issue)


def _nodes_issues(
    exp: Experiment, job: JobSpec, loc: tuple[str | int, ...], issue: Issue
) -> Iterator[SpecIssue]:
    """Rule 5: a gang that could never run is said at plan, before anything launches."""
    if job.nodes == 1:
        return
    if job.run is None and "theano" in job.framework:
        yield issue(
            loc,
            f"nodes: {job.nodes} with framework 'theano': PyTensor has no multi-worker "
            "runtime, so a task runs on one machine",
            "use framework: tensorflow (MultiWorkerMirroredStrategy), or nodes: 1",
        )
    if job.trainer == "pca":
        yield issue(loc, f"nodes: {job.nodes}: the pca trainer runs on one machine", "nodes: 1")
    if exp.provider == LocalConfig.name and job.run is not None:
        yield issue(
            loc,
            f"nodes: {job.nodes} with a run: job on provider 'local': own commands share one "
            "workdir there, so they run one at a time",
            "use provider: ssh (even hosts on 127.0.0.1), or nodes: 1",
        )
    if exp.provider == SshConfig.name and exp.hosts:
        for device in job.device:
            fit = [h for h in exp.hosts if device == "cpu" or h.gpus > 0]
            if job.nodes > len(fit):
                what = "hosts" if device == "cpu" else "hosts with GPUs"
                yield issue(
                    loc,
                    f"nodes: {job.nodes} but the inventory has {len(fit)} {what}: the task "
                    "needs that many machines at once",
                    f"add hosts, or nodes: {max(len(fit), 1)}",
                )


def _host_issues(host: Host, loc: tuple[str | int, ...], issue: Issue) -> Iterator[SpecIssue]:
    """Rule 3: what would only fail at connect time (exit 4) is said at plan (exit 2)."""
    for key in ("host", "user", "key", "python", "workspace_root", "known_hosts", "name"):
        value = getattr(host, key, None)
        if value is not None and not str(value).strip():
            yield issue((*loc, key), f"'{key}' is empty", None)
    if host.host.strip() and not _HOST.match(host.host):
        yield issue((*loc, "host"), f"{host.host!r} is not a host name or address", None)
    if host.host_key is not None and not _host_key_ok(host.host_key):
        yield issue(
            (*loc, "host_key"),
            "not a public key line ('TYPE BASE64 [comment]')",
            f"ssh-keyscan -p {host.port or 22} {host.host} prints it",
        )


def _host_key_ok(line: str) -> bool:
    """The shape the transport accepts: an OpenSSH public key or known_hosts line."""
    parts = line.split()
    if len(parts) >= 3 and not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
        parts = parts[1:]
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
        return False
    try:
        base64.b64decode(parts[1], validate=True)
    except ValueError:
        return False
    return True


def matrix_size(job: JobSpec) -> int:
    """How many tasks ``job`` expands to, computed without expanding it."""
    if job.run is not None:
        return len(job.device) * math.prod(len(v) for v in job.params.values())
    sizes = [len(v) for axis in AXES if isinstance(v := getattr(job, axis, None), list)]
    return math.prod(sizes)


def command_issues(command: str, params: list[str]) -> Iterator[tuple[str, str | None]]:
    """Rule 4 for one ``run:`` command: (message, hint) per problem."""
    try:
        fields = list(string.Formatter().parse(command))
    except ValueError as exc:
        yield f"cannot read the command's placeholders: {exc}", "write {{ for a literal brace"
        return
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
        shown += "}"
        if not _NAME.match(name):
            yield (
                f"'{shown}' is not a placeholder: only {{name}} with a param's name is",
                "write {{ for a literal brace",
            )
        elif spec or conversion:
            yield f"'{shown}': placeholders take no format spec or conversion", f"write {{{name}}}"
    for name in quoted_placeholders(command):
        yield (
            f"placeholder '{{{name}}}' is inside quotes",
            "values are shell-quoted already; remove the quotes around it",
        )


def quoted_placeholders(command: str) -> list[str]:
    """Names of ``{name}`` placeholders that sit inside '...' or "..." in a shell command."""
    found: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(command):
        c = command[i]
        if c == "\\" and quote != "'":
            i += 2
            continue
        if quote is None and c in "'\"":
            quote = c
        elif c == quote:
            quote = None
        elif c in "{}" and command[i : i + 2] in ("{{", "}}"):
            i += 2
            continue
        elif c == "{" and quote is not None:
            end = command.find("}", i)
            if end > i:
                found.append(command[i + 1 : end])
                i = end
        i += 1
    return found
