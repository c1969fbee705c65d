"""Detached jobs over a real sshd: start, poll, stop, and surviving a dropped connection."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from infra.transport.base import Job, JobStatus
from infra.transport.ssh import SshTransport
from infra.transport.ssh_jobs import split_utf8
from tests.sshd import SshdServer

pytestmark = pytest.mark.sshd


def wait_finished(
    transport: SshTransport, job: Job, timeout_s: float = 10
) -> tuple[JobStatus, str]:
    """Poll until the job ends; returns the last status and the whole log streamed."""
    offset, log = 0, ""
    deadline = time.monotonic() + timeout_s
    while True:
        status = transport.poll(job, log_offset=offset)
        offset, log = status.log_offset, log + status.log_chunk
        if status.finished or time.monotonic() > deadline:
            return status, log
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_start_poll_streams_the_log_and_reports_the_exit_code(
    ssh_transport: SshTransport, tmp_path: Path
) -> None:
    log = str(tmp_path / "logs" / "task.log")
    job = ssh_transport.start(
        ["sh", "-c", 'echo "start $GREETING"; sleep 0.5; echo end >&2; exit 7'],
        env={"GREETING": "hello world"},
        log=log,
    )
    assert job.pid > 0 and job.job_dir == log + ".job"
    first = ssh_transport.poll(job)
    assert first.running and first.exit_code is None
    status, text = wait_finished(ssh_transport, job)
    assert (status.running, status.exit_code) == (False, 7)
    assert text == "start hello world\nend\n"
    assert status.heartbeat_age_s is not None


def test_start_honours_cwd(ssh_transport: SshTransport, tmp_path: Path) -> None:
    job = ssh_transport.start(["pwd"], env={}, log=str(tmp_path / "pwd.log"), cwd=str(tmp_path))
    status, text = wait_finished(ssh_transport, job)
    assert status.exit_code == 0 and text.strip() == str(tmp_path)


def test_job_survives_the_connection_closing(sshd: SshdServer, tmp_path: Path) -> None:
    log = str(tmp_path / "task.log")
    with SshTransport(sshd.address) as transport:
        job = transport.start(["sh", "-c", "sleep 3; echo done"], env={}, log=log)
    # A new connection (even after sshd itself died and came back) still sees it.
    sshd.stop()
    sshd.start()
    with SshTransport(sshd.address) as transport:
        assert transport.poll(job).running
        status, text = wait_finished(transport, job)
    assert status.exit_code == 0 and text == "done\n"


def test_stop_kills_the_process_group_and_is_idempotent(
    ssh_transport: SshTransport, tmp_path: Path
) -> None:
    child_pid = tmp_path / "child.pid"
    job = ssh_transport.start(
        ["sh", "-c", f"sleep 60 & echo $! > {child_pid}; wait"], env={}, log=str(tmp_path / "l")
    )
    deadline = time.monotonic() + 5
    while not child_pid.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(child_pid.read_text())
    assert _alive(child)
    ssh_transport.stop(job, grace_s=2)
    status = ssh_transport.poll(job)
    assert not status.running
    assert status.exit_code == 143  # the wrapper saw its command die of TERM
    assert not _alive(child)
    ssh_transport.stop(job, grace_s=2)  # again: nothing to do, no error


def test_stop_escalates_to_kill_when_term_is_ignored(
    ssh_transport: SshTransport, tmp_path: Path
) -> None:
    job = ssh_transport.start(
        ["sh", "-c", "trap '' TERM; echo ready; sleep 60"], env={}, log=str(tmp_path / "l")
    )
    while "ready" not in ssh_transport.poll(job).log_chunk:
        time.sleep(0.05)
    t0 = time.monotonic()
    ssh_transport.stop(job, grace_s=0.5)
    assert time.monotonic() - t0 < 5
    status = ssh_transport.poll(job)
    assert not status.running and status.exit_code is None  # killed hard: no exit code left


def test_poll_of_a_job_that_never_started_is_finished_without_code(
    ssh_transport: SshTransport, tmp_path: Path
) -> None:
    ghost = Job(id="x", pid=999999, job_dir=str(tmp_path / "nope.job"), log=str(tmp_path / "nope"))
    status = ssh_transport.poll(ghost)
    assert (status.running, status.exit_code, status.log_chunk) == (False, None, "")
    ssh_transport.stop(ghost)


def test_split_utf8_keeps_a_cut_character_for_the_next_poll() -> None:
    data = "héllo €".encode()
    text, used = split_utf8(data[:-1])
    assert text == "héllo " and used == len(data) - 3
    assert split_utf8(data) == ("héllo €", len(data))
    assert split_utf8(b"") == ("", 0)
