"""``python -S -m trainers.measure`` on a spot machine: a notice (from the fake IMDSv2, or the
``preempt-now`` file) reaches the task as a signal, a file and a log line. Real processes: the
child is a tiny Python script that records the signals it gets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.imds import FakeImds

REPO = Path(__file__).resolve().parents[2]

# Records each signal it gets in DIR/got; exits 75 on USR1 and 143 on TERM (as a trainer
# would), or 0 once DIR/finish appears; DIR/ready says its handlers are in place.
CHILD = r"""
import os, signal, sys, time
d = sys.argv[1]
def on(signum, frame):
    with open(os.path.join(d, "got"), "a") as fh:
        fh.write(signal.Signals(signum).name + "\n")
    sys.exit(75 if signum == signal.SIGUSR1 else 128 + signum)
signal.signal(signal.SIGUSR1, on)
signal.signal(signal.SIGTERM, on)
open(os.path.join(d, "ready"), "w").close()
for _ in range(3000):
    if os.path.exists(os.path.join(d, "finish")):
        sys.exit(0)
    time.sleep(0.01)
sys.exit(9)
"""


def _measure(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[str], Path]:
    out, child = tmp_path / "out", tmp_path / "child"
    child.mkdir()
    # Without -S (unlike the engine's command line): coverage then follows the wrapper too.
    argv = [sys.executable, "-m", "trainers.measure", "--out", str(out), "--",
            sys.executable, "-S", "-c", CHILD, str(child)]  # fmt: skip
    base = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATE_")}
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**base, "PYTHONPATH": str(REPO), "ORCHESTRATE_IMDS_POLL_S": "0.05", **env},
    )
    assert _until(lambda: (child / "ready").exists()), proc.communicate(timeout=30)
    return proc, child


def _until(condition: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    stdout, stderr = proc.communicate(timeout=30)
    assert not stderr, stderr
    return proc.returncode, stdout


def _json(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.read_text())
    return data


def test_a_spot_notice_sends_usr1_and_leaves_preempted_json(tmp_path: Path) -> None:
    with FakeImds() as imds:
        proc, child = _measure(tmp_path, ORCHESTRATE_IMDS_URL=imds.url)
        body = imds.notice_spot(action="terminate", in_s=120)
        code, log = _finish(proc)
    assert code == 75 and (child / "got").read_text() == "SIGUSR1\n"
    out = tmp_path / "out"
    record = _json(out / "preempted.json")
    assert record["source"] == "spot/instance-action" and record["notice"] == body
    assert abs(float(str(record["at"])) - time.time()) < 60
    [line] = [x for x in log.splitlines() if x.startswith("[orchestrate] notice:")]
    assert line.startswith("[orchestrate] notice: spot interruption")
    assert "terminate" in line and str(body["time"]) in line and "SIGUSR1" in line
    process = _json(out / "process.json")
    assert process["preempted"] is True and process["exit_code"] == 75
    assert not (out / "rebalance.json").exists()
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "preempted.json",
                                                     "process.json"]  # fmt: skip


def test_a_preempt_now_file_is_the_same_notice_without_any_imds(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "preempted.json").parent.mkdir()
    (out / "preempted.json").write_text("{}")  # an earlier attempt's: removed at the start
    proc, child = _measure(tmp_path)
    assert _until(lambda: not (out / "preempted.json").exists())
    (out / "preempt-now").write_text('{"action": "drain"}')
    code, log = _finish(proc)
    assert code == 75 and (child / "got").read_text() == "SIGUSR1\n"
    record = _json(out / "preempted.json")
    assert record["source"] == "file" and record["notice"] == {"action": "drain"}
    assert "[orchestrate] notice: spot interruption (file)" in log
    assert _json(out / "process.json")["preempted"] is True
    assert not (out / "preempt-now").exists()  # consumed: a rerun in this folder is not preempted


def test_the_preempt_signal_can_be_term_for_scripts_that_ignore_usr1(tmp_path: Path) -> None:
    proc, child = _measure(tmp_path, ORCHESTRATE_PREEMPT_SIGNAL="TERM")
    (tmp_path / "out" / "preempt-now").touch()
    code, log = _finish(proc)
    assert code == 143 and (child / "got").read_text() == "SIGTERM\n"
    assert "sending SIGTERM to the task" in log
    assert _json(tmp_path / "out" / "preempted.json")["notice"] == {}  # an empty file: no body


def test_a_rebalance_recommendation_is_a_line_and_a_file_but_no_signal(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with FakeImds() as imds:
        proc, child = _measure(tmp_path, ORCHESTRATE_IMDS_URL=imds.url)
        body = imds.recommend_rebalance()
        assert _until(lambda: (out / "rebalance.json").exists())
        time.sleep(0.3)  # a few more polls: still one line, still no signal
        (child / "finish").touch()
        code, log = _finish(proc)
    assert code == 0 and not (child / "got").exists()
    record = _json(out / "rebalance.json")
    assert record["source"] == "events/recommendations/rebalance" and record["notice"] == body
    lines = [x for x in log.splitlines() if x.startswith("[orchestrate] notice:")]
    assert len(lines) == 1 and lines[0].startswith("[orchestrate] notice: rebalance recommendation")
    assert _json(out / "process.json")["preempted"] is False
    assert not (out / "preempted.json").exists()


def test_without_a_notice_the_exit_is_seen_at_once_despite_a_long_poll(tmp_path: Path) -> None:
    out = tmp_path / "out"
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-S", "-m", "trainers.measure", "--out", str(out), "--", "true"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "ORCHESTRATE_IMDS_POLL_S": "30"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - t0 < 5  # woken by the exit, not by the 30 s poll
    process = _json(out / "process.json")
    assert process["preempted"] is False and float(str(process["wall_s"])) < 2


@pytest.mark.parametrize(
    ("name", "value"),
    [("ORCHESTRATE_PREEMPT_SIGNAL", "USR9"), ("ORCHESTRATE_IMDS_POLL_S", "0"),
     ("ORCHESTRATE_IMDS_POLL_S", "soon")],
)  # fmt: skip
def test_bad_settings_are_refused_before_starting(tmp_path: Path, name: str, value: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-S", "-m", "trainers.measure", "--out", str(tmp_path / "o"), "--",
         "touch", str(tmp_path / "ran")],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), name: value},
        capture_output=True,
        text=True,
        timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2 and name in proc.stderr and value in proc.stderr
    assert not (tmp_path / "ran").exists()
