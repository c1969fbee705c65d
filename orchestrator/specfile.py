"""Experiment file -> ``Experiment``, or every problem at once with file:line:col.

pydantic reports *where in the data* a problem is; YAML knows *where in the text* that data
came from. This module keeps a map from data paths to text positions (from PyYAML's node
marks) and joins the two, adding "did you mean" hints from difflib. Written by hand because
no well-kept library joins pydantic locations to YAML marks.
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator.errors import SpecError, SpecIssue
from orchestrator.spec import Experiment, JobSpec
from orchestrator.spec_input import Loc, Positions, parse_yaml, read_spec
from orchestrator.spec_limits import command_issues, limit_issues


def load_experiment(path: Path) -> Experiment:
    """Parse and validate an experiment file.

    Raises:
        SpecError: with every issue found (syntax, schema, cross-field, limits), each located.
    """
    return parse_experiment(read_spec(Path(path)), str(path))


def parse_experiment(text: str, filename: str) -> Experiment:
    """Like ``load_experiment`` for text already in memory (tests, stdin)."""
    data, positions, issues = parse_yaml(text, filename)  # bounded: see spec_input
    if not isinstance(data, dict):
        raise SpecError(
            [SpecIssue(filename, 1, 1, "", "the file must be a mapping with name:, jobs:, ...")]
        )
    issues.extend(_trainer_key_issues(data, positions, filename))
    try:
        exp = Experiment.model_validate(data)
    except ValidationError as exc:
        issues.extend(_pydantic_issues(exc, data, positions, filename))
        raise SpecError(_sorted(issues)) from None
    issues.extend(_semantic_issues(exp, positions, filename))
    issues.extend(_script_issues(exp, positions, filename))
    if not issues:  # limits count the matrix, which needs the rest to be right first

        def issue(loc: Loc, message: str, hint: str | None) -> SpecIssue:
            line, col = _position(loc, positions)
            return SpecIssue(filename, line, col, format_path(loc), message, hint)

        issues.extend(limit_issues(exp, issue))
    if issues:
        raise SpecError(_sorted(issues))
    return exp


def located(path: Path, found: list[tuple[Loc, str, str]]) -> SpecError:
    """A ``SpecError`` for problems found after loading (by checks that need more than the
    file, such as the ssh config or a known_hosts file), each located in ``path``."""
    _, positions, _ = parse_yaml(read_spec(Path(path)), str(path))
    issues = [
        SpecIssue(str(path), *_position(loc, positions), format_path(loc), message, hint or None)
        for loc, message, hint in found
    ]
    return SpecError(_sorted(issues))


def _sorted(issues: list[SpecIssue]) -> list[SpecIssue]:
    return sorted(issues, key=lambda i: (i.line, i.column, i.path))


def _position(loc: Loc, positions: Positions) -> tuple[int, int]:
    for n in range(len(loc), -1, -1):
        if loc[:n] in positions:
            return positions[loc[:n]]
    return (1, 1)


def format_path(loc: Loc) -> str:
    """``('jobs', 0, 'optimizer', 2)`` -> ``jobs[0].optimizer[2]``."""
    text = ""
    for part in loc:
        if part == "__key__":
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The pydantic model whose fields live at ``loc`` (for 'did you mean' on unknown keys)."""
    from orchestrator.spec import Budget, Host, MachineClass

    if not loc:
        return Experiment
    head = loc[0]
    nested: dict[str, type[BaseModel]] = {"budget": Budget}
    if head == "jobs" and len(loc) == 2:
        return JobSpec
    if head == "hosts" and len(loc) == 2:
        return Host
    if head == "machines" and len(loc) == 2:
        return MachineClass
    if isinstance(head, str) and len(loc) == 1:
        return nested.get(head)
    return None


def _value_at(data: Any, loc: Loc) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _pydantic_issues(
    exc: ValidationError, data: Any, positions: Positions, filename: str
) -> Iterator[SpecIssue]:
    seen: set[tuple[Loc, str]] = set()
    for err in exc.errors():
        loc = _clean_loc(tuple(err["loc"]), data)
        kind = err["type"]
        if (loc, kind) in seen:
            continue
        seen.add((loc, kind))
        path = format_path(loc)
        hint: str | None = None
        if kind == "extra_forbidden":
            key = str(loc[-1])
            line, col = positions.get((*loc[:-1], "__key__", key), _position(loc, positions))
            model = _model_at(loc[:-1])
            fields = sorted(model.model_fields) if model else []
            close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
            message = f"unknown key '{key}'"
            hint = f"did you mean '{close[0]}'?" if close else _valid(fields)
            yield SpecIssue(filename, line, col, path, message, hint)
            continue
        line, col = _position(loc, positions)
        if kind == "literal_error":
            expected = _literal_choices(err.get("ctx", {}).get("expected", ""))
            value = err.get("input")
            close = difflib.get_close_matches(str(value), expected, n=1, cutoff=0.6)
            what = loc[-2] if isinstance(loc[-1], int) and len(loc) > 1 else loc[-1]
            message = f"{_short(value)} is not a valid {what}"
            hint = f"did you mean '{close[0]}'? ({_valid(expected)})" if close else _valid(expected)
        elif kind == "missing":
            line, col = _position(loc[:-1], positions)
            message = f"required field '{loc[-1]}' is missing"
        else:
            message = f"{err['msg']} (got {_short(err.get('input'))})"
        yield SpecIssue(filename, line, col, path, message, hint)


def _clean_loc(loc: Loc, data: Any) -> Loc:
    """Drop pydantic's internal steps (union branch names, validator names) from a location."""
    out: list[str | int] = []
    for part in loc:
        candidate = (*out, part)
        if isinstance(part, int) or _value_at(data, tuple(candidate)) is not None:
            out.append(part)
        elif isinstance(part, str) and not any(c in part for c in "[]()-,"):
            # a key that is not in the data: a missing or unknown field
            out.append(part)
    return tuple(out)


def _short(value: Any) -> str:
    """A value echoed in a message: repr (escapes shown as text), at most 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _literal_choices(expected: str) -> list[str]:
    return [c.strip().strip("'\"") for c in expected.replace(" or ", ",").split(",") if c.strip()]


def _valid(choices: list[str]) -> str:
    return "valid: " + ", ".join(choices) if choices else ""


def _semantic_issues(exp: Experiment, positions: Positions, filename: str) -> Iterator[SpecIssue]:
    """Rules that span fields: provider needs, trainer-specific keys, placement targets."""

    def issue(loc: Loc, message: str, hint: str | None = None) -> SpecIssue:
        line, col = _position(loc, positions)
        return SpecIssue(filename, line, col, format_path(loc), message, hint)

    if exp.provider == "aws" and not exp.ssh_cidr:
        yield issue(
            ("provider",),
            "provider 'aws' needs 'ssh_cidr:' (who may reach the machines over SSH)",
            "your public IP as a /32, e.g. ssh_cidr: 203.0.113.7/32",
        )
    elif exp.ssh_cidr and exp.ssh_cidr.endswith("/0") and not exp.allow_open_ssh:
        yield issue(
            ("ssh_cidr",),
            f"ssh_cidr {exp.ssh_cidr} opens SSH to the whole internet",
            "narrow it to your address, or set allow_open_ssh: true if you really mean it",
        )
    if exp.provider == "aws" and not exp.machines:
        yield issue(("provider",), "provider 'aws' needs a 'machines:' section", None)
    if exp.provider == "ssh" and not exp.hosts:
        yield issue(
            ("provider",), "provider 'ssh' needs a 'hosts:' list", "e.g. hosts: [{host: ..}]"
        )
    if exp.provider == "aws" and exp.machines and exp.placement == "by-device":
        needed = {d for job in exp.jobs for d in job.device}
        for device in sorted(needed):
            if device not in exp.machines:
                yield issue(
                    ("machines",),
                    f"placement 'by-device' needs a machine class named '{device}'",
                    _valid(sorted(exp.machines)) or None,
                )


_MNIST_ONLY = ("optimizer", "epochs", "batch_size", "hidden", "learning_rate", "momentum")
_PCA_ONLY = ("components", "tol", "max_iter", "normalisation")


def _trainer_key_issues(
    data: dict[str, Any], positions: Positions, filename: str
) -> Iterator[SpecIssue]:
    """Keys that belong to another kind of job; checked on the raw data so they are reported
    together with schema errors rather than only after those are fixed."""
    jobs = data.get("jobs")
    if not isinstance(jobs, list):
        return
    for i, job in enumerate(jobs):
        if not isinstance(job, dict):
            continue
        if "run" in job:
            keys = (*_MNIST_ONLY, *_PCA_ONLY, "framework", "decay", "epsilon", "subset")
            message, hint = "does not apply to a 'run:' job", "put it in params: and use {{{}}}"
        elif job.get("trainer") in ("mnist", "pca"):
            other = _PCA_ONLY if job["trainer"] == "mnist" else (*_MNIST_ONLY, "decay", "epsilon")
            keys = (*other, "setup", "outputs", "params")
            message, hint = f"does not apply to trainer '{job['trainer']}'", "remove it"
        else:
            continue
        for key in keys:
            if key in job:
                line, col = positions.get(("jobs", i, "__key__", key), (0, 0))
                yield SpecIssue(
                    filename,
                    line,
                    col,
                    format_path(("jobs", i, key)),
                    f"'{key}' {message}",
                    hint.format(key) if "{" in hint else hint,
                )


def placeholders(command: str) -> list[str]:
    """The ``{name}`` fields of a ``run:`` command (``{{`` is a literal brace)."""
    names = []
    for _, field, _, _ in string.Formatter().parse(command):
        if field is not None:
            names.append(field)
    return names


_SAFE_GLOB = re.compile(r"^[A-Za-z0-9_.*?\[\]-][A-Za-z0-9_./*?\[\]-]*$")


def _script_issues(exp: Experiment, positions: Positions, filename: str) -> Iterator[SpecIssue]:
    """``run:`` jobs: one of trainer/run, known placeholders, non-empty axes, a real workdir."""

    def issue(loc: Loc, message: str, hint: str | None = None) -> SpecIssue:
        line, col = _position(loc, positions)
        return SpecIssue(filename, line, col, format_path(loc), message, hint)

    any_script = False
    for i, job in enumerate(exp.jobs):
        if job.trainer is None and job.run is None:
            yield issue(("jobs", i), "a job needs 'trainer:' (mnist, pca) or 'run:' (a command)")
            continue
        if job.trainer is not None and job.run is not None:
            yield issue(("jobs", i, "run"), "a job has either 'trainer:' or 'run:', not both")
            continue
        if job.run is None:
            continue
        any_script = True
        for key, values in job.params.items():
            if not values:
                yield issue(
                    ("jobs", i, "params", key),
                    f"param '{key}' has an empty list",
                    "a matrix axis needs at least one value",
                )
        for k, pattern in enumerate(job.outputs):
            if not _SAFE_GLOB.match(pattern) or ".." in pattern.split("/"):
                yield issue(
                    ("jobs", i, "outputs", k),
                    f"output pattern {pattern!r} is not a relative path glob",
                    "use letters, digits, . _ - / * ? [ ] (e.g. checkpoints/*.pt)",
                )
        bad = list(command_issues(job.run, list(job.params)))
        for message, hint in bad:
            yield issue(("jobs", i, "run"), message, hint)
        if bad:
            continue
        for name in placeholders(job.run):
            if name not in job.params:
                close = difflib.get_close_matches(name, list(job.params), n=1, cutoff=0.6)
                hint = f"did you mean '{{{close[0]}}}'?" if close else None
                if hint is None:
                    known = ", ".join("{" + p + "}" for p in job.params) or "none defined"
                    hint = f"params: {known}; write {{{{ for a literal brace"
                yield issue(("jobs", i, "run"), f"unknown placeholder '{{{name}}}'", hint)
    if any_script:
        base = Path(filename).resolve().parent
        workdir = base / (exp.workdir or ".")
        if not workdir.is_dir():
            yield issue(
                ("workdir",),
                f"workdir '{exp.workdir}' does not exist (looked in {workdir})",
                "give a directory relative to the experiment file",
            )
