"""A corpus of malformed experiment files: each one is refused with located errors (exit 2),
in under 2 s and 200 MB, never a traceback, a hang or an explosion (issue #14).

Hand-picked cases cover the named attacks (alias bombs, deep nesting, huge files, FIFOs,
devices, invalid UTF-8, duplicate keys, format fields, quoted placeholders, ...); hypothesis
adds mutations of valid files (wrong types, unknown keys, non-finite and huge numbers, empty
host fields, text-level breakage). They run in-process, for speed; ``test_cli_sample`` runs a
sample through the real command line.
"""

from __future__ import annotations

import os
import re
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import SpecError
from orchestrator.specfile import load_experiment

LIMIT_S = 2.0
LIMIT_BYTES = 200 << 20

BASE: dict[str, Any] = {
    "name": "corpus",
    "budget": {"max_usd": 5, "max_hours": 2},
    "jobs": [
        {"trainer": "mnist", "optimizer": ["sgd", "adam"], "epochs": 2, "hidden": [300]},
        {"trainer": "pca", "framework": ["tensorflow", "theano"], "components": 10},
    ],
}
SSH_BASE: dict[str, Any] = {
    "name": "corpus-ssh",
    "provider": "ssh",
    "hosts": [
        {
            "host": "127.0.0.1",
            "port": 2222,
            "user": "me",
            "key": __file__,  # a file that exists wherever the tests run
            "host_key": "ssh-ed25519 "
            "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
        }
    ],
    "jobs": [{"trainer": "mnist", "epochs": 1}],
}
SCRIPT_BASE: dict[str, Any] = {
    "name": "corpus-script",
    "workdir": ".",
    "jobs": [{"name": "s", "run": "python t.py --lr {lr}", "params": {"lr": [0.1, 0.01]}}],
}


def refused(path: Path) -> SpecError:
    """Load ``path``; assert it is refused, located, fast and small. Returns the error."""
    tracemalloc.start()
    t0, w0 = time.process_time(), time.perf_counter()
    try:
        with pytest.raises(SpecError) as caught:
            load_experiment(path)
        took, wall = time.process_time() - t0, time.perf_counter() - w0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    err = caught.value
    assert took < LIMIT_S, f"{path.name}: {took:.2f}s of CPU"  # CPU: the machine is shared
    assert wall < 15, f"{path.name}: {wall:.1f}s: a hang?"
    assert peak < LIMIT_BYTES, f"{path.name}: {peak >> 20} MB"
    assert err.issues
    for issue in err.issues:
        assert issue.file == str(path)
        assert issue.line >= 1 and issue.column >= 1, str(issue)
        assert "\x1b" not in str(issue) and "\x00" not in str(issue)
    assert re.search(rf"{re.escape(str(path))}:\d+:\d+: ", str(err))
    return err


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


# ------------------------------------------------------------------ hand-picked

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)

HAND: dict[str, str | bytes] = {
    "billion-laughs": LAUGHS,
    "alias-in-jobs": "name: x\njobs:\n  - &j {trainer: mnist}\n  - *j\n",
    "merge-key": "name: x\nbase: &b {trainer: mnist}\njobs:\n  - <<: *b\n",
    "deep-list": "name: x\njobs: " + "[" * 5000 + "]" * 5000 + "\n",
    "deep-map": "name: x\njobs:\n" + "".join("  " * i + f"- k{i}:\n" for i in range(200)),
    "deep-flow-map": "name: x\njobs: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
    "unclosed-bracket": "name: x\njobs: [{trainer: mnist\n",
    "tab-indent": "name: x\njobs:\n\t- trainer: mnist\n",
    "empty": "",
    "only-comment": "# nothing here\n",
    "top-list": "- name: x\n",
    "top-scalar": "just text\n",
    "top-null": "~\n",
    "nul-byte": "name: x\x00\njobs: [{trainer: mnist}]\n",
    "escape-byte": "name: x\njobs: [{trainer: \x1b[31mmnist}]\n",
    "invalid-utf8": b"name: x\njobs: [{trainer: mn\xffist}]\n",
    "latin1": "name: caf\xe9\njobs: [{trainer: mnist}]\n".encode("latin-1"),
    "utf16": "name: x\njobs: [{trainer: mnist}]\n".encode("utf-16"),
    "python-object": "name: x\njobs: !!python/object/apply:os.system ['true']\n",
    "unknown-tag": "name: x\njobs: !custom [1]\n",
    "bad-binary": "name: x\njobs: [{trainer: mnist, seed: !!binary '%%%'}]\n",
    "bad-timestamp": "name: x\njobs: [{trainer: mnist, seed: !!timestamp 'x'}]\n",
    "complex-key": "name: x\n? [a, b]\n: 1\njobs: [{trainer: mnist}]\n",
    "int-key": "name: x\n1: one\njobs: [{trainer: mnist}]\n",
    "null-key": "name: x\n~: one\njobs: [{trainer: mnist}]\n",
    "dup-top": "name: x\nname: y\njobs: [{trainer: mnist}]\n",
    "dup-nested": "name: x\njobs:\n  - trainer: mnist\n    epochs: 1\n    epochs: 2\n",
    "dup-budget": "name: x\nbudget: {max_usd: 1, max_usd: 1000}\njobs: [{trainer: mnist}]\n",
    "nan-budget": "name: x\nbudget: {max_usd: .nan}\njobs: [{trainer: mnist}]\n",
    "inf-budget": "name: x\nbudget: {max_usd: .inf}\njobs: [{trainer: mnist}]\n",
    "inf-hours": "name: x\nbudget: {max_hours: .inf}\njobs: [{trainer: mnist}]\n",
    "huge-hours": "name: x\nbudget: {max_hours: 100000}\njobs: [{trainer: mnist}]\n",
    "huge-usd": "name: x\nbudget: {max_usd: 1e12}\njobs: [{trainer: mnist}]\n",
    "huge-epochs": "name: x\njobs: [{trainer: mnist, epochs: 1000000000000000000000}]\n",
    "huge-int-literal": "name: x\njobs: [{trainer: mnist, seed: " + "9" * 4000 + "}]\n",
    "neg-lr": "name: x\njobs: [{trainer: mnist, learning_rate: -0.1}]\n",
    "nan-lr": "name: x\njobs: [{trainer: mnist, learning_rate: .nan}]\n",
    "zero-epochs": "name: x\njobs: [{trainer: mnist, epochs: 0}]\n",
    "string-epochs": "name: x\njobs: [{trainer: mnist, epochs: lots}]\n",
    "float-epochs": "name: x\njobs: [{trainer: mnist, epochs: 1.5}]\n",
    "empty-axis": "name: x\njobs: [{trainer: mnist, optimizer: []}]\n",
    "empty-epochs-axis": "name: x\njobs: [{trainer: mnist, epochs: []}]\n",
    "huge-matrix": "name: x\njobs: [{trainer: mnist, optimizer: [sgd, adam, momentum, rmsprop],"
    " epochs: ["
    + ", ".join(str(i) for i in range(1, 60))
    + "], batch_size: ["
    + ", ".join(str(i) for i in range(1, 60))
    + "]}]\n",
    "script-huge-matrix": "name: x\nworkdir: .\njobs: [{run: 'echo {a} {b}', params: {a: ["
    + ", ".join(map(str, range(200)))
    + "], b: ["
    + ", ".join(map(str, range(200)))
    + "]}}]\n",
    "long-task-id": "name: x\nworkdir: .\njobs: [{run: 'echo {a}', params: {a: ['"
    + "y" * 300
    + "', z]}}]\n",
    "long-name": "name: " + "n" * 300 + "\njobs: [{trainer: mnist}]\n",
    "bad-name": "name: 'bad name!'\njobs: [{trainer: mnist}]\n",
    "empty-name": "name: ''\njobs: [{trainer: mnist}]\n",
    "no-jobs": "name: x\njobs: []\n",
    "jobs-mapping": "name: x\njobs: {trainer: mnist}\n",
    "unknown-top": "name: x\nbudgett: {max_usd: 1}\njobs: [{trainer: mnist}]\n",
    "unknown-trainer": "name: x\njobs: [{trainer: resnet}]\n",
    "wrong-trainer-key": "name: x\njobs: [{trainer: pca, optimizer: adam}]\n",
    "both-trainer-run": "name: x\nworkdir: .\njobs: [{trainer: mnist, run: 'echo'}]\n",
    "neither": "name: x\njobs: [{epochs: 1}]\n",
    "fmt-positional": "name: x\nworkdir: .\njobs: [{run: 'echo {0}', params: {v: [1]}}]\n",
    "fmt-empty": "name: x\nworkdir: .\njobs: [{run: 'echo {}', params: {v: [1]}}]\n",
    "fmt-attr": "name: x\nworkdir: .\njobs: [{run: 'echo {v.real}', params: {v: [1]}}]\n",
    "fmt-index": "name: x\nworkdir: .\njobs: [{run: 'echo {v[0]}', params: {v: [1]}}]\n",
    "fmt-spec": "name: x\nworkdir: .\njobs: [{run: 'echo {v:>10}', params: {v: [1]}}]\n",
    "fmt-conv": "name: x\nworkdir: .\njobs: [{run: 'echo {v!r}', params: {v: [1]}}]\n",
    "fmt-nested": "name: x\nworkdir: .\njobs: [{run: 'echo {v:{v}}', params: {v: [1]}}]\n",
    "fmt-unmatched": "name: x\nworkdir: .\njobs: [{run: 'echo {v', params: {v: [1]}}]\n",
    "fmt-stray-close": "name: x\nworkdir: .\njobs: [{run: 'echo }', params: {v: [1]}}]\n",
    "fmt-unknown": "name: x\nworkdir: .\njobs: [{run: 'echo {w}', params: {v: [1]}}]\n",
    "quoted-single": "name: x\nworkdir: .\njobs: [{run: \"echo '{v}'\", params: {v: [1]}}]\n",
    "quoted-double": "name: x\nworkdir: .\njobs: [{run: 'echo \"{v}\"', params: {v: [1]}}]\n",
    "quoted-mid": "name: x\nworkdir: .\njobs: [{run: \"sh -c 'run --x={v}'\", params: {v: [1]}}]\n",
    "nul-param": "name: x\nworkdir: .\njobs: [{run: 'echo {v}', params: {v: [\"a\\0b\"]}}]\n",
    "empty-param": "name: x\nworkdir: .\njobs: [{run: 'echo {v}', params: {v: []}}]\n",
    "bad-output-glob": "name: x\nworkdir: .\njobs: [{run: 'echo', outputs: ['../../etc/*']}]\n",
    "missing-workdir": "name: x\nworkdir: nowhere\njobs: [{run: 'echo'}]\n",
    "ssh-no-hosts": "name: x\nprovider: ssh\njobs: [{trainer: mnist}]\n",
    "aws-no-cidr": "name: x\nprovider: aws\nmachines: {cpu: {instance_type: t3.large, ami: x}}\n"
    "jobs: [{trainer: mnist}]\n",
    "aws-open-cidr": "name: x\nprovider: aws\nssh_cidr: 0.0.0.0/0\n"
    "machines: {cpu: {instance_type: t3.large, ami: x}}\njobs: [{trainer: mnist}]\n",
    "bad-cidr-prefix": "name: x\nssh_cidr: 10.0.0.0/33\njobs: [{trainer: mnist}]\n",
    "bad-cidr-text": "name: x\nssh_cidr: my-laptop\njobs: [{trainer: mnist}]\n",
    "bad-cidr-octet": "name: x\nssh_cidr: 300.1.2.3/32\njobs: [{trainer: mnist}]\n",
    "huge-deadline": "name: x\nconnect_deadline_s: 1e9\njobs: [{trainer: mnist}]\n",
    "huge-timeout": "name: x\njobs: [{trainer: mnist, timeout_minutes: 1e9}]\n",
    "bad-provider": "name: x\nprovider: gcp\njobs: [{trainer: mnist}]\n",
}


def _ssh_with(**host: Any) -> str:
    data = {**SSH_BASE, "hosts": [{**SSH_BASE["hosts"][0], **host}]}
    return dump({k: v for k, v in data.items()})


def _ssh_without(key: str) -> str:
    h = {k: v for k, v in SSH_BASE["hosts"][0].items() if k != key}
    return dump({**SSH_BASE, "hosts": [h]})


HAND.update(
    {
        "ssh-empty-host": _ssh_with(host=""),
        "ssh-blank-user": _ssh_with(user="  "),
        "ssh-empty-key": _ssh_with(key=""),
        "ssh-no-host": _ssh_without("host"),
        "ssh-port-0": _ssh_with(port=0),
        "ssh-port-big": _ssh_with(port=70000),
        "ssh-port-text": _ssh_with(port="ssh"),
        "ssh-slots-0": _ssh_with(slots=0),
        "ssh-gpus-neg": _ssh_with(gpus=-1),
        "ssh-hosts-scalar": dump({**SSH_BASE, "hosts": "127.0.0.1"}),
        "ssh-host-option": _ssh_with(host="-oProxyCommand=touch pwned"),
        "ssh-host-space": _ssh_with(host="bad host"),
        "ssh-garbage-host-key": _ssh_with(host_key="garbage"),
        "ssh-bad-base64-host-key": _ssh_with(host_key="ssh-ed25519 AAAA!!!"),
        "ssh-empty-python": _ssh_with(python=""),
        "ssh-empty-workspace": _ssh_with(workspace_root=" "),
    }
)

# Issue 19: one task on N machines at once (gang placement).
_TWO_HOSTS = [{**SSH_BASE["hosts"][0]}, {**SSH_BASE["hosts"][0], "host": "127.0.0.2"}]
NODES: dict[str, tuple[str, str]] = {
    "nodes-0": ("name: x\njobs: [{trainer: mnist, nodes: 0}]\n", "greater than 0"),
    "nodes-text": ("name: x\njobs: [{trainer: mnist, nodes: two}]\n", "integer"),
    "nodes-theano": (
        "name: x\njobs: [{trainer: mnist, framework: [tensorflow, theano], nodes: 2}]\n",
        "PyTensor has no multi-worker runtime",
    ),
    "nodes-pca": ("name: x\njobs: [{trainer: pca, nodes: 2}]\n", "pca trainer runs on one"),
    "nodes-local-script": (
        "name: x\nworkdir: .\njobs: [{run: 'echo', nodes: 2}]\n",
        "run one at a time",
    ),
    "nodes-over-inventory": (
        dump({**SSH_BASE, "hosts": _TWO_HOSTS, "jobs": [{"trainer": "mnist", "nodes": 3}]}),
        "the inventory has 2 hosts",
    ),
    "nodes-over-gpu-hosts": (
        dump(
            {
                **SSH_BASE,
                "hosts": [{**_TWO_HOSTS[0], "gpus": 1}, _TWO_HOSTS[1]],
                "jobs": [{"trainer": "mnist", "device": "gpu", "nodes": 2}],
            }
        ),
        "the inventory has 1 hosts with GPUs",
    ),
}
HAND.update({name: text for name, (text, _) in NODES.items()})


@pytest.mark.parametrize("name", sorted(NODES))
def test_nodes_a_gang_could_never_run_is_refused_at_the_nodes_key(
    name: str, tmp_path: Path
) -> None:
    text, says = NODES[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    err = refused(path)
    assert len(err.issues) == 1, str(err)
    issue = err.issues[0]
    assert issue.path == "jobs[0].nodes" and says in issue.message, str(err)
    line = text.splitlines()[issue.line - 1]
    assert line[issue.column - 1 :].startswith(("nodes", "0", "two", "2", "3")), (line, issue)


def test_nodes_that_fit_are_accepted(tmp_path: Path) -> None:
    ok = {
        "local": "name: x\njobs: [{trainer: mnist, nodes: 2}]\n",
        "script": dump(
            {**SSH_BASE, "hosts": _TWO_HOSTS, "workdir": ".", "jobs": [{"run": "echo", "nodes": 2}]}
        ),  # fmt: skip
        "ssh": dump({**SSH_BASE, "hosts": _TWO_HOSTS, "jobs": [{"trainer": "mnist", "nodes": 2}]}),
    }
    for name, text in ok.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        exp = load_experiment(path)
        assert exp.jobs[0].nodes == 2


@pytest.mark.parametrize("name", sorted(HAND))
def test_hand_picked(name: str, tmp_path: Path) -> None:
    content = HAND[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    refused(path)


def test_a_ten_megabyte_file(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("name: x\njobs: [{trainer: mnist}]\n" + "# padding\n" * (1 << 20))
    assert "limit is" in str(refused(path))


def test_a_long_single_line(tmp_path: Path) -> None:
    path = tmp_path / "line.yaml"
    path.write_text("name: " + "x" * 250_000 + "\njobs: [{trainer: mnist}]\n")
    refused(path)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "fifo.yaml"
    os.mkfifo(path)
    assert "not a regular file" in str(refused(path))


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom", "/dev/null", "/"])
def test_devices_and_directories(target: str, tmp_path: Path) -> None:
    path = tmp_path / "link.yaml"
    path.symlink_to(target)
    refused(path)


def test_a_missing_file(tmp_path: Path) -> None:
    refused(tmp_path / "nope.yaml")


def test_an_unreadable_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    path = tmp_path / "secret.yaml"
    path.write_text(dump(BASE))
    path.chmod(0)
    refused(path)


def test_the_bases_are_valid(tmp_path: Path) -> None:
    for i, base in enumerate((BASE, SSH_BASE, SCRIPT_BASE)):
        path = tmp_path / f"base{i}.yaml"
        path.write_text(dump(base))
        load_experiment(path)


# ------------------------------------------------------------------ generated

# Paths into BASE with values that are wrong for them, whatever else is in the file.
_INT_BAD = st.sampled_from([0, -1, -(10**6), 1.5, "two", [], {}, [[1]], 10**20, float("inf")])
_FLOAT_BAD = st.sampled_from([0, -1.0, float("nan"), float("inf"), "x", [], {}, 1e300])
_WORD_BAD = st.text(min_size=1, max_size=20).filter(
    lambda s: s.strip() not in ("sgd", "adam", "tensorflow", "theano", "mnist", "pca", "cpu")
)
_TARGETS: list[tuple[tuple[Any, ...], st.SearchStrategy[Any]]] = [
    (("jobs", 0, "epochs"), _INT_BAD),
    (("jobs", 0, "batch_size"), _INT_BAD),
    (("jobs", 1, "components"), _INT_BAD),
    (("jobs", 0, "hidden"), st.sampled_from([[0], [-3], ["a"], [[1.5]], 10**20, []])),
    (("jobs", 0, "learning_rate"), _FLOAT_BAD),
    (("budget", "max_usd"), _FLOAT_BAD),
    (("budget", "max_hours"), _FLOAT_BAD | st.floats(min_value=745, max_value=1e14)),
    (("jobs", 0, "optimizer"), _WORD_BAD | st.lists(_WORD_BAD, min_size=1, max_size=3)),
    (("jobs", 1, "framework"), _WORD_BAD),
    (("jobs", 0, "device"), _WORD_BAD),
    (("jobs", 0, "trainer"), _WORD_BAD),
    (("name",), st.sampled_from(["", " ", "a b", "-x", "x/y", "é", "n" * 101])),
    (("jobs",), st.sampled_from([[], {}, "mnist", 1, None])),
    (("budget",), st.sampled_from([[], "cheap", 5])),
]


def _set(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    import copy

    out = copy.deepcopy(data)
    here = out
    for part in path[:-1]:
        here = here[part]
    here[path[-1]] = value
    return out


@st.composite
def wrong_value(draw: st.DrawFn) -> str:
    path, values = draw(st.sampled_from(_TARGETS))
    return dump(_set(BASE, path, draw(values)))


@st.composite
def unknown_key(draw: st.DrawFn) -> str:
    key = draw(st.from_regex(r"[a-z][a-z_]{0,12}", fullmatch=True))
    where = draw(st.sampled_from([(), ("budget",), ("jobs", 0), ("jobs", 1)]))
    known = {"name", "provider", "budget", "jobs", "max_usd", "max_hours", "trainer", "epochs"}
    if key in known or key in _all_fields():
        key = key + "_zz"
    return dump(_set(BASE, (*where, key), draw(st.integers(0, 9) | st.text(max_size=5))))


def _all_fields() -> set[str]:
    from orchestrator.spec import Budget, Experiment, JobSpec

    return set(Experiment.model_fields) | set(JobSpec.model_fields) | set(Budget.model_fields)


@st.composite
def bad_host(draw: st.DrawFn) -> str:
    field = draw(st.sampled_from(["host", "user", "key"]))
    blank = draw(st.sampled_from(["", " ", "\t"]))
    host = {**SSH_BASE["hosts"][0], field: blank}
    return dump({**SSH_BASE, "hosts": [host]})


@st.composite
def broken_text(draw: st.DrawFn) -> bytes:
    base = dump(draw(st.sampled_from([BASE, SSH_BASE]))).encode()
    kind = draw(st.sampled_from(["byte", "dup", "alias", "deep", "nul", "unclosed"]))
    at = draw(st.integers(0, len(base)))
    if kind == "byte":  # a byte that is never UTF-8
        return (
            base[:at] + draw(st.sampled_from([b"\xff", b"\xfe", b"\xc0\x80", b"\x80"])) + base[at:]
        )
    if kind == "dup":
        return base + b"name: again\n"
    if kind == "alias":
        return base + b"extra: &e [1]\nmore: *e\n"
    if kind == "deep":
        n = draw(st.integers(33, 3000))
        return base + b"extra: " + b"[" * n + b"]" * n + b"\n"
    if kind == "nul":
        return base[:at] + b"\x00" + base[at:]
    return base + b"extra: [1, {a: 2\n"


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,  # no .hypothesis/ directory in the tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(content=st.one_of(wrong_value(), unknown_key(), bad_host(), broken_text()))
def test_generated(content: str | bytes, tmp_path: Path) -> None:
    path = tmp_path / "generated.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    refused(path)


# ------------------------------------------------------------------ through the CLI

SAMPLE = [
    "billion-laughs",
    "deep-list",
    "invalid-utf8",
    "nul-byte",
    "dup-nested",
    "nan-budget",
    "huge-hours",
    "huge-matrix",
    "fmt-attr",
    "quoted-single",
    "nul-param",
    "ssh-empty-host",
    "bad-cidr-text",
    "complex-key",
    "python-object",
]


_MEASURED = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "sys.stderr.write(f'\\nUSAGE {r.ru_maxrss} {r.ru_utime + r.ru_stime}\\n')\n"
    "sys.exit(code)\n"
)


@pytest.mark.slow
@pytest.mark.parametrize("name", [*SAMPLE, "fifo", "ten-megabytes"])
@pytest.mark.parametrize("verb", ["plan", "run"])
def test_cli_sample(name: str, verb: str, tmp_path: Path) -> None:
    """The real command line: exit 2, file:line:col on stderr, no traceback, fast and small."""
    import subprocess
    import sys

    path = tmp_path / f"{name}.yaml"
    if name == "fifo":
        os.mkfifo(path)
    elif name == "ten-megabytes":
        path.write_text("name: x\n" + "#\n" * (5 << 20))
    else:
        content = HAND[name]
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    args = [verb, str(path), "--state-dir", str(tmp_path / "state")]
    if verb == "run":
        args += ["--runs-dir", str(tmp_path / "runs")]
    t0 = time.perf_counter()
    # The command runs under a small parent that reports its own children's usage: this test
    # process's RUSAGE_CHILDREN keeps the largest child it ever reaped (a trainer of an earlier
    # test), so it cannot measure one command.
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURED, sys.executable, "-m", "orchestrator", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    took = time.perf_counter() - t0
    stderr, _, usage = proc.stderr.rpartition("\nUSAGE ")
    maxrss_kb, cpu = int(usage.split()[0]), float(usage.split()[1])
    assert proc.returncode == 2, stderr
    assert re.search(rf"{re.escape(str(path))}:\d+:\d+: ", stderr), stderr
    assert "Traceback" not in stderr
    # CPU time, not wall time: the machine is shared, and a hang shows in the wall clock.
    assert cpu < LIMIT_S, f"{cpu:.2f}s of CPU"
    assert took < 15, f"{took:.1f}s: a hang?"
    assert maxrss_kb * 1024 < LIMIT_BYTES, f"{maxrss_kb / 1024:.0f} MB"
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# ------------------------------------------------------------------ host keys, at plan


def _hashed(name: str) -> str:
    """``name`` as OpenSSH's ``HashKnownHosts`` writes it."""
    import base64
    import hashlib
    import hmac

    salt = os.urandom(20)
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


KEY_LINE = SSH_BASE["hosts"][0]["host_key"]
PIN_CASES: dict[str, tuple[str | None, str]] = {
    # case: (the known_hosts file's text, or None for no file named), what stderr says
    "no-host-key": (None, "hosts[0]: no host key pinned for 127.0.0.1:2222"),
    "known-hosts-missing": ("<missing>", "cannot be read"),
    "known-hosts-other-host": (f"[127.0.0.2]:2222 {KEY_LINE}\n", "has no key for [127.0.0.1]:2222"),
    "known-hosts-port-22-only": (f"127.0.0.1 {KEY_LINE}\n", "has no key for [127.0.0.1]:2222"),
    "known-hosts-marker-only": (
        f"@cert-authority [127.0.0.1]:2222 {KEY_LINE}\n",
        "has no key for [127.0.0.1]:2222",
    ),
    "known-hosts-pinned": (f"# mine\n[127.0.0.1]:2222 {KEY_LINE}\n", ""),
    "known-hosts-hashed": (f"{_hashed('[127.0.0.1]:2222')} {KEY_LINE}\n", ""),
}


@pytest.mark.parametrize("case", sorted(PIN_CASES))
def test_an_unpinned_host_is_refused_at_plan(case: str, tmp_path: Path) -> None:
    """A host nothing pins would be refused at connect (exit 4, after the run started):
    ``plan`` and ``run`` say so first, located (exit 2); a pinned one plans."""
    import subprocess
    import sys

    text, expected = PIN_CASES[case]
    host = {k: v for k, v in SSH_BASE["hosts"][0].items() if k != "host_key"}
    if text is not None:
        host["known_hosts"] = str(tmp_path / "known_hosts")
        if text != "<missing>":
            (tmp_path / "known_hosts").write_text(text)
    path = tmp_path / "exp.yaml"
    path.write_text(dump({**SSH_BASE, "hosts": [host]}))
    env = {**os.environ, "HOME": str(tmp_path)}  # no ~/.ssh/config to supply a file
    for verb in ("plan", "run"):
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator", verb, str(path), "--state-dir", "state"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env=env,
        )
        if not expected:
            assert proc.returncode == 0, proc.stderr
            break  # `run` would connect: pinned is all this test is about
        assert proc.returncode == 2, (verb, proc.stderr)
        assert re.search(rf"{re.escape(str(path))}:\d+:\d+: hosts\[0\]", proc.stderr)
        assert expected in proc.stderr and "Traceback" not in proc.stderr
        assert not (tmp_path / "runs").exists()
