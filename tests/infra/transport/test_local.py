from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from infra.errors import CommandFailed
from infra.transport.base import Job, JobStatus
from infra.transport.jobs import PRELUDE_FAILED
from infra.transport.local import LocalTransport
from tests.procs import alive, live_group_members


def test_run_returns_result_and_check_raises() -> None:
    t = LocalTransport()
    ok = t.run(["sh", "-c", "echo out; echo err >&2"], env={"X": "1"})
    assert (ok.exit_code, ok.stdout.strip(), ok.stderr.strip()) == (0, "out", "err")
    bad = t.run(["sh", "-c", "echo boom >&2; exit 7"], check=False)
    assert bad.exit_code == 7 and not bad.ok
    with pytest.raises(CommandFailed) as info:
        t.run(["sh", "-c", "echo boom >&2; exit 7"])
    assert info.value.result.exit_code == 7 and "boom" in str(info.value)


def test_run_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    r = LocalTransport().run(
        ["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], timeout_s=0.5, check=False
    )
    assert r.exit_code == 124
    child = int(pidfile.read_text())
    time.sleep(0.1)
    assert not alive(child)


def test_start_poll_stream_and_exit_code(tmp_path: Path) -> None:
    t = LocalTransport()
    job = t.start(
        ["sh", "-c", "echo one; sleep 0.3; echo two; exit 5"], env={}, log=str(tmp_path / "j.log")
    )
    offset, text = 0, ""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        st = t.poll(job, log_offset=offset)
        text += st.log_chunk
        offset = st.log_offset
        if st.finished:
            break
        time.sleep(0.05)
    assert st.exit_code == 5
    assert text.split() == ["one", "two"]


def test_stop_kills_the_group_and_is_idempotent(tmp_path: Path) -> None:
    t = LocalTransport()
    job = t.start(["sh", "-c", "sleep 60 & sleep 60; wait"], env={}, log=str(tmp_path / "s.log"))
    assert live_group_members(job.pid)
    t.stop(job, grace_s=2)
    t.stop(job, grace_s=2)
    assert live_group_members(job.pid) == []
    assert t.poll(job).running is False


def test_put_tree_is_incremental_and_mirrors_deletions(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "pkg").mkdir(parents=True)
    for i in range(5):
        (src / "pkg" / f"m{i}.py").write_text(f"x = {i}\n")
    (src / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(src / "run.sh", 0o755)
    t = LocalTransport()
    first = t.put_tree(src, str(dst), exclude=("*.pyc",))
    assert (first.files_total, first.files_sent) == (6, 6)
    assert os.stat(dst / "run.sh").st_mode & 0o777 == 0o755
    assert t.put_tree(src, str(dst)).files_sent == 0
    (src / "pkg" / "m1.py").write_text("x = 'changed'\n")
    (src / "pkg" / "m2.py").unlink()
    again = t.put_tree(src, str(dst))
    assert (again.files_sent, again.files_deleted) == (1, 1)
    assert (dst / "pkg" / "m1.py").read_text() == "x = 'changed'\n"
    assert not (dst / "pkg" / "m2.py").exists()


def test_a_missing_working_directory_leaves_an_exit_code_and_a_reason(tmp_path: Path) -> None:
    t = LocalTransport()
    log = tmp_path / "m.log"
    job = t.start(["true"], env={}, log=str(log), cwd=str(tmp_path / "nowhere"))
    deadline = time.monotonic() + 10
    while (st := t.poll(job)).running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert st.exit_code == 97
    assert "no such directory" in log.read_text()


def _finish(t: LocalTransport, job: Job) -> JobStatus:
    deadline = time.monotonic() + 10
    while (st := t.poll(job)).running and time.monotonic() < deadline:
        time.sleep(0.02)
    return st


def test_a_job_survives_as_its_own_session_and_leaves_no_zombie(tmp_path: Path) -> None:
    t = LocalTransport()
    job = t.start(["sh", "-c", "sleep 0.2"], env={}, log=str(tmp_path / "z.log"))
    assert os.getsid(job.pid) == job.pid == os.getpgid(job.pid)  # kill -- -PID reaches all
    assert _finish(t, job).exit_code == 0
    assert (Path(job.job_dir) / "heartbeat").exists()
    with pytest.raises(ProcessLookupError):  # reaped by the poll, not left a zombie
        os.kill(job.pid, 0)


def test_the_poll_that_sees_the_exit_code_reaps_the_wrapper(tmp_path: Path) -> None:
    # Polling without a pause finds the exit code in the instant between the wrapper writing it
    # and exiting; that poll must still collect the wrapper (CI once caught it a zombie).
    t = LocalTransport()
    for i in range(20):
        job = t.start(["true"], env={}, log=str(tmp_path / f"r{i}.log"))
        deadline = time.monotonic() + 10
        while (st := t.poll(job)).running and time.monotonic() < deadline:
            pass
        assert st.exit_code == 0
        with pytest.raises(ProcessLookupError):
            os.kill(job.pid, 0)


def test_env_reaches_the_command_with_names_the_shell_cannot_assign(tmp_path: Path) -> None:
    t = LocalTransport()
    log = tmp_path / "e.log"
    show = "import os; print(os.environ['A'], os.environ['B_2'], os.environ.get('weird.name'))"
    env = {"A": "it's $HOME", "B_2": "two words"}
    job = t.start([sys.executable, "-c", show], env=env, log=str(log))
    assert _finish(t, job).exit_code == 0
    assert log.read_text().splitlines() == ["it's $HOME two words None"]
    job = t.start([sys.executable, "-c", show], env={**env, "weird.name": "x"}, log=str(log))
    assert _finish(t, job).exit_code == 0  # only env(1) can set such a name
    assert log.read_text().splitlines()[1:] == ["it's $HOME two words x"]


def test_a_prelude_runs_first_and_a_failing_one_ends_the_job(tmp_path: Path) -> None:
    t = LocalTransport()
    log = tmp_path / "p.log"
    job = t.start(
        ["sh", "-c", f"cat {tmp_path}/made"],
        env={},
        log=str(log),
        prelude=f"echo hi > {tmp_path}/made",
    )
    assert _finish(t, job).exit_code == 0 and log.read_text() == "hi\n"
    job = t.start(["sh", "-c", "echo ran"], env={}, log=str(log), prelude="echo why; false")
    assert _finish(t, job).exit_code == PRELUDE_FAILED
    assert log.read_text().splitlines()[1:] == ["why", "[orchestrate] the job's prelude failed"]
