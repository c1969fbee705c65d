"""The experiment file as untrusted input: read and load it within fixed bounds.

Why: a careless or hostile file must cost little and end in located errors (exit 2), never a
traceback, a hang or gigabytes of memory. So, before pydantic sees anything:

  1. Only a regular file is read (a FIFO, a device or a directory is refused without blocking),
     at most ``MAX_BYTES``; it must be UTF-8 (the first bad byte is located).
  2. The YAML event stream is checked first, iteratively (no recursion): nesting deeper than
     ``MAX_DEPTH``, more than ``MAX_NODES`` nodes, and any anchor or alias (``&a``/``*a``:
     "billion laughs") are refused, located. Only then is the node tree built.
  3. Mapping keys must be plain strings, and a key given twice is an error at its second use.
  4. Values: numbers must be finite and below ``MAX_NUMBER``; strings may not hold NUL.

``parse_yaml`` returns the data and a map from data paths to (line, column) for the rest of
``specfile``.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import SpecError, SpecIssue

MAX_BYTES = 256 * 1024  # an experiment file is a page or two; this is a hundred times that
MAX_DEPTH = 32  # the schema nests five deep (jobs[].params.lr[]); hidden lists one more
MAX_NODES = 50_000
MAX_NUMBER = 10**15  # beyond any epoch count, size, seed or price we take

Loc = tuple[str | int, ...]
Positions = dict[Loc, tuple[int, int]]  # data path -> (line, column), 1-based

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it
_STR = "tag:yaml.org,2002:str"


def _one(filename: str, line: int, col: int, message: str, hint: str | None = None) -> SpecError:
    return SpecError([SpecIssue(filename, line, col, "", message, hint)])


def read_spec(path: Path) -> str:
    """Rule 1: the file's text, or ``SpecError`` located at the file (1:1) or the bad byte."""
    name = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise _one(name, 1, 1, f"cannot read the file: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _one(name, 1, 1, "not a regular file (a directory, FIFO or device)")
        if st.st_size > MAX_BYTES:
            raise _one(name, 1, 1, f"the file is {st.st_size} bytes; the limit is {MAX_BYTES}")
        chunks: list[bytes] = []
        while (got := sum(map(len, chunks))) <= MAX_BYTES:
            chunk = os.read(fd, MAX_BYTES + 1 - got)
            if not chunk:
                break
            chunks.append(chunk)
        raw = b"".join(chunks)
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:  # it grew while we looked
        raise _one(name, 1, 1, f"the file is over the limit of {MAX_BYTES} bytes")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _one(name, line, col, f"not UTF-8 text: byte 0x{raw[exc.start]:02x}") from exc


def _mark(m: Any) -> tuple[int, int]:
    return (m.line + 1, m.column + 1) if m is not None else (1, 1)


def _yaml_error(exc: yaml.YAMLError, text: str, filename: str) -> SpecError:
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow, e.g. NUL
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return _one(filename, line, col, f"not valid YAML: character {exc.character!r}")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, col = _mark(mark)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return _one(filename, line, col, f"not valid YAML: {problem}")


def _check_events(text: str, filename: str) -> None:
    """Rule 2, on the event stream (the parser is a state machine: no recursion here)."""
    depth = nodes = 0
    for ev in yaml.parse(text, Loader=_Loader):
        line, col = _mark(ev.start_mark)
        if isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None):
            raise _one(
                filename,
                line,
                col,
                "YAML anchors and aliases (&name, *name) are not allowed",
                "write the value out where it is used",
            )
        if isinstance(ev, yaml.NodeEvent):
            nodes += 1
            if nodes > MAX_NODES:
                raise _one(filename, line, col, f"more than {MAX_NODES} YAML nodes")
        if isinstance(ev, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _one(filename, line, col, f"nested deeper than {MAX_DEPTH} levels")
        elif isinstance(ev, yaml.CollectionEndEvent):
            depth -= 1


def _walk(node: yaml.Node, loc: Loc, out: Positions, issues: list[SpecIssue], fn: str) -> None:
    """Record positions; rule 3 (string keys, no duplicates). Depth is bounded by now."""
    out[loc] = _mark(node.start_mark)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            line, col = _mark(key_node.start_mark)
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
                issues.append(SpecIssue(fn, line, col, _path(loc), "a key must be a plain name"))
                continue
            key = key_node.value
            if key in seen:
                issues.append(
                    SpecIssue(fn, line, col, _path((*loc, key)), f"duplicate key '{key}'")
                )
                continue
            seen.add(key)
            out[(*loc, "__key__", key)] = (line, col)
            _walk(value_node, (*loc, key), out, issues, fn)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*loc, i), out, issues, fn)


def _path(loc: Loc) -> str:
    text = ""
    for part in loc:
        if part == "__key__":
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _values(data: Any, loc: Loc = ()) -> Iterator[tuple[Loc, str]]:
    """Rule 4: (where, what is wrong) for each bad scalar, iteratively."""
    stack: list[tuple[Loc, Any]] = [(loc, data)]
    while stack:
        here, value = stack.pop()
        if isinstance(value, dict):
            stack.extend(((*here, k), v) for k, v in value.items() if isinstance(k, str))
        elif isinstance(value, list):
            stack.extend(((*here, i), v) for i, v in enumerate(value))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, float) and not math.isfinite(value):
            yield here, f"{value} is not a finite number"
        elif isinstance(value, int | float) and abs(value) > MAX_NUMBER:
            shown = (
                f"{value:.3g}" if isinstance(value, float) else f"a {len(str(value))}-digit number"
            )
            yield here, f"{shown} is too large (the limit is {MAX_NUMBER:.0e})"
        elif isinstance(value, str) and "\x00" in value:
            yield here, "a NUL character is not allowed in a value"


def parse_yaml(text: str, filename: str) -> tuple[Any, Positions, list[SpecIssue]]:
    """Rules 2-4: the data, where each part of it is, and the issues found on the way.

    Raises ``SpecError`` when the text cannot be loaded at all (syntax, limits).
    """
    try:
        _check_events(text, filename)
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, filename) from exc
    if node is None:
        raise _one(filename, 1, 1, "the file is empty", "start from `orchestrate init`")
    positions: Positions = {}
    issues: list[SpecIssue] = []
    _walk(node, (), positions, issues, filename)
    try:
        data = yaml.SafeLoader("").construct_document(node)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, filename) from exc
    except Exception as exc:  # noqa: BLE001 - PyYAML's constructors trip on odd payloads
        # (a bad !!timestamp raises AttributeError, !!binary a binascii error): still input.
        line, col = positions[()]
        raise _one(filename, line, col, f"not valid YAML: {exc}") from exc
    for loc, message in _values(data):
        line, col = _locate(loc, positions)
        issues.append(SpecIssue(filename, line, col, _path(loc), message))
    return data, positions, issues


def _locate(loc: Loc, positions: Positions) -> tuple[int, int]:
    for n in range(len(loc), -1, -1):
        if loc[:n] in positions:
            return positions[loc[:n]]
    return (1, 1)
