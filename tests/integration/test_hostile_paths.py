"""Awkward places to run from: clean errors for unusable directories, a private journal, and
quotes in paths that the job wrapper must survive (issue #14)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from infra.transport.local import LocalTransport
from tests.cli import last_json, orchestrate
from tests.fakes import FAKE_TRAINERS
from tests.sshd import SshdServer

EXP = "name: paths\njobs:\n  - trainer: mnist\n    epochs: 1\n"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "exp.yaml").write_text(EXP)
    return dict(
        os.environ,
        ORCHESTRATE_TRAINERS_SRC=str(FAKE_TRAINERS),
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
        ORCHESTRATE_LOCAL_GPUS="0",
        FAKE_EPOCH_S="0",
    )


def clean_exit_2(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr
    assert "Traceback" not in err and all(w in err for w in words), err


def test_a_runs_dir_that_is_a_file(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "runs").write_text("not a dir")
    proc = orchestrate(["run", "exp.yaml", "--runs-dir", "runs"], env, tmp_path)
    clean_exit_2(proc, "runs directory", "a part of the path is a file")


def test_a_state_dir_that_is_a_file(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "state").write_text("not a dir")
    for verb in ("plan", "run", "status"):
        args: list[str] = [verb] if verb == "status" else [verb, "exp.yaml"]
        clean_exit_2(orchestrate(args, env, tmp_path), "state directory", "a file is in the way")


def test_an_over_long_runs_dir(tmp_path: Path, env: dict[str, str]) -> None:
    proc = orchestrate(["run", "exp.yaml", "--runs-dir", "r" * 300], env, tmp_path)
    clean_exit_2(proc, "runs directory", "too long")


def test_an_over_long_state_dir(tmp_path: Path, env: dict[str, str]) -> None:
    env = {**env, "ORCHESTRATE_STATE_DIR": str(tmp_path / ("s" * 300))}
    for verb in ("plan", "run", "status"):
        args: list[str] = [verb] if verb == "status" else [verb, "exp.yaml"]
        clean_exit_2(orchestrate(args, env, tmp_path), "state directory", "too long")


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Makes ``tmp_path/NAME`` a directory nobody can write, root included: as root a mode
    stops nothing, so it is a read-only tmpfs mount there (as anyone else, mode 0500)."""
    mounted: list[Path] = []

    def make(name: str) -> Path:
        path = tmp_path / name
        path.mkdir(mode=0o500)
        if os.geteuid() == 0:
            cmd = ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "orchestrate-test", str(path)]
            if subprocess.run(cmd, capture_output=True).returncode != 0:
                pytest.skip("root without a read-only mount: nothing is unwritable to it")
            mounted.append(path)
        return path

    yield make
    for path in mounted:
        subprocess.run(["umount", str(path)], check=False)


def test_a_read_only_state_dir(
    tmp_path: Path, env: dict[str, str], read_only: Callable[[str], Path]
) -> None:
    read_only("state")
    for verb in ("plan", "run", "status"):
        args: list[str] = [verb] if verb == "status" else [verb, "exp.yaml"]
        proc = orchestrate(args, env, tmp_path)
        clean_exit_2(proc, "state directory", "not writable")


def test_a_read_only_runs_dir(
    tmp_path: Path, env: dict[str, str], read_only: Callable[[str], Path]
) -> None:
    read_only("runs")
    proc = orchestrate(["run", "exp.yaml", "--runs-dir", "runs"], env, tmp_path)
    clean_exit_2(proc, "runs directory")
    assert "Read-only file system" in proc.stderr or "Permission denied" in proc.stderr
    status = orchestrate(["status", "--json"], env, tmp_path)
    assert status.returncode == 0 and json.loads(status.stdout) == [], status.stdout  # no run


def test_the_journal_is_private(tmp_path: Path, env: dict[str, str]) -> None:
    proc = orchestrate(["run", "exp.yaml", "--json"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    state = tmp_path / "state"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    files = [p for p in state.iterdir() if p.name.startswith("journal.sqlite")]
    assert files
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_quotes_and_dollars_in_every_path(tmp_path: Path, env: dict[str, str]) -> None:
    odd = tmp_path / 'it\'s "odd" $HOME `x`'
    (odd / "work").mkdir(parents=True)
    (odd / "work" / "t.py").write_text("import os; print('out', os.environ['ORCHESTRATE_OUT'])\n")
    (odd / "exp.yaml").write_text(
        "name: odd\nworkdir: work\njobs:\n  - run: python t.py --v {v}\n"
        "    params: {v: [\"it's\", '$(touch pwned)']}\n  - trainer: mnist\n    epochs: 1\n"
    )
    env["ORCHESTRATE_STATE_DIR"] = str(odd / "state")
    proc = orchestrate(["run", "exp.yaml", "--json", "--runs-dir", str(odd / "runs")], env, odd)
    assert proc.returncode == 0, proc.stderr
    assert last_json(proc)["counts"] == {"done": 3}
    assert not list(odd.rglob("pwned"))


def test_the_wrapper_reports_a_missing_directory_with_a_quote(tmp_path: Path) -> None:
    t = LocalTransport()
    log = tmp_path / "it's.log"
    job = t.start(["true"], env={}, log=str(log), cwd=str(tmp_path / "gone'dir"))
    for _ in range(200):
        status = t.poll(job)
        if status.finished:
            break
        time.sleep(0.02)
    assert status.exit_code == 97
    assert "no such directory" in log.read_text() and "gone'dir" in log.read_text()


@pytest.mark.sshd
def test_quotes_in_an_ssh_workspace(
    tmp_path: Path, env: dict[str, str], sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    server = sshd_fleet(1)[0]
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "t.py").write_text("print('ran')\n")
    exp = {
        "name": "odd-ssh",
        "provider": "ssh",
        "workdir": "work",
        "hosts": [
            {
                "host": server.host,
                "port": server.port,
                "user": server.user,
                "key": server.key_path,
                "host_key": server.host_key,
                "python": sys.executable,
                "workspace_root": str(tmp_path / 'it\'s $HOME "remote"'),
            }
        ],
        "jobs": [
            {"run": "python t.py", "setup": "echo set up"},
            {"trainer": "mnist", "epochs": 1},
        ],
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    proc = orchestrate(["run", "exp.yaml", "--json"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert last_json(proc)["counts"] == {"done": 2}
