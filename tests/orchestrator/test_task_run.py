from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from ami.stages import FAILED
from infra.provider import Machine
from orchestrator.matrix import expand
from orchestrator.paths import Workspace
from orchestrator.specfile import parse_experiment
from orchestrator.task_run import (
    MEASURE_ENTRY,
    collect_outputs,
    open_log,
    ready_wait,
    start_prelude,
    task_command,
)

REPO = Path(__file__).resolve().parents[2]

MACHINE = Machine(
    id="m-1",
    provider="aws",
    name="gpu",
    address=None,
    gpus=1,
    cpus=4,
    hourly_usd=0.5,
    started_at=datetime(2026, 1, 1, tzinfo=UTC),
    python="/opt/orchestrate/venv/bin/python",
    workspace_root="/home/ubuntu/orchestrate",
)
WS = Workspace("/home/ubuntu/orchestrate/run-1")


def _tasks():  # type: ignore[no-untyped-def]
    exp = parse_experiment(
        "name: x\njobs:\n  - trainer: mnist\n    optimizer: adam\n    device: [cpu, gpu]\n"
        "  - name: own\n    run: python t.py --lr {lr}\n    params: {lr: [0.1]}\n",
        "x.yaml",
    )
    return {t.id: t for t in expand(exp)}


def test_trainer_command_env_and_gpu_visibility() -> None:
    tasks = _tasks()
    gpu = task_command(
        tasks["mnist-tensorflow-adam-gpu"],
        MACHINE,
        WS,
        run_id="run-1",
        data_dir=None,
        gpu=0,
        measured=True,
    )
    assert gpu.argv[:6] == [
        MACHINE.python,
        "-S",
        "-c",
        MEASURE_ENTRY,
        "--out",
        WS.out("mnist-tensorflow-adam-gpu"),
    ]
    inner = gpu.argv[gpu.argv.index("--") + 1 :]
    assert inner[:3] == [MACHINE.python, "-m", "trainers.mnist"]
    assert inner[-2:] == ["--checkpoint-dir", WS.checkpoints("mnist-tensorflow-adam-gpu")]
    assert gpu.env["CUDA_VISIBLE_DEVICES"] == "0" and gpu.cwd == WS.code
    assert gpu.env["PYTHONPATH"] == WS.code and gpu.env["ORCHESTRATE_RUN"] == "run-1"
    assert "ORCHESTRATE_DATA_DIR" not in gpu.env  # local settings never travel to a cloud machine
    assert gpu.env["TF_CPP_MIN_LOG_LEVEL"] == "2"  # no oneDNN notices as the status line
    cpu = task_command(
        tasks["mnist-tensorflow-adam-cpu"],
        MACHINE,
        WS,
        run_id="run-1",
        data_dir="/data",
        gpu=None,
        measured=False,
    )
    assert cpu.env["CUDA_VISIBLE_DEVICES"] == "" and MEASURE_ENTRY not in cpu.argv
    assert cpu.argv[cpu.argv.index("--data-dir") + 1] == "/data"


def test_script_command_runs_in_the_workdir_with_its_params() -> None:
    own = task_command(
        _tasks()["own-cpu"], MACHINE, WS, run_id="run-1", data_dir=None, gpu=None, measured=False
    )
    assert own.cwd == WS.work
    assert own.argv[:2] == ["sh", "-c"] and own.argv[2].endswith("python t.py --lr 0.1")
    assert json.loads(own.env["ORCHESTRATE_PARAMS"]) == {"lr": 0.1}
    assert "TF_CPP_MIN_LOG_LEVEL" not in own.env  # the user's command keeps its own settings


def test_collect_outputs_takes_only_files_newer_than_the_task() -> None:
    script = collect_outputs("/w", "/o", ("ckpt/*.pt", "metrics.json"), newer_than="/l/t.started")
    assert script.splitlines()[0] == "cd /w || exit 0"
    assert 'for f in ckpt/*.pt; do [ -e "$f" ] && [ "$f" -nt /l/t.started ] || continue;' in script
    assert 'cp -a "$f" /o/outputs/"$f"' in script


def test_open_log_replaces_a_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    log = tmp_path / "task.log"
    log.symlink_to(victim)
    with open_log(log) as fh:
        fh.write("line\n")
    with open_log(log) as fh:  # an ordinary file is appended to
        fh.write("two\n")
    assert victim.read_text() == "precious"
    assert not log.is_symlink() and log.read_text() == "line\ntwo\n"


def test_local_tasks_are_pinned_to_their_thread_share() -> None:
    local = replace(MACHINE, provider="local", tags={"orchestrate:threads": "3"})
    cmd = task_command(
        _tasks()["mnist-tensorflow-adam-cpu"], local, WS, run_id="r", data_dir=None, gpu=None,
        measured=False,
    )  # fmt: skip
    assert cmd.env["OMP_NUM_THREADS"] == "3" and cmd.env["TF_NUM_INTRAOP_THREADS"] == "3"
    remote = task_command(
        _tasks()["mnist-tensorflow-adam-cpu"], MACHINE, WS, run_id="r", data_dir=None, gpu=None,
        measured=False,
    )  # fmt: skip
    assert "OMP_NUM_THREADS" not in remote.env


def test_a_stop_after_end_ok_leaves_the_task_done(tmp_path: Path) -> None:
    from orchestrator.task_run import task_outcome

    timing, log = tmp_path / "timing.jsonl", tmp_path / "task.log"
    log.write_text("epoch 2/2\nboom\n")

    def outcome(**kw: object) -> tuple[str, str | None]:
        args: dict[str, object] = dict(
            exit_code=None, stopped=False, timed_out=False, stop_reason="interrupted by SIGTERM",
            timeout_s=60.0,
        )  # fmt: skip
        args.update(kw)
        return task_outcome(timing=timing, log=log, **args)  # type: ignore[arg-type]

    timing.write_text('{"event": "epoch", "epoch": 2}\n')
    assert outcome(stopped=True, exit_code=0) == ("stopped", "interrupted by SIGTERM")
    assert outcome(timed_out=True) == ("timeout", "stopped at its timeout of 60s")
    assert outcome(exit_code=3) == ("failed", "exit 3: boom")
    assert outcome(exit_code=0) == ("done", None)
    timing.write_text('{"event": "epoch", "epoch": 2}\n{"event": "end", "status": "ok"}\n')
    assert outcome(stopped=True, exit_code=143) == ("done", None)
    assert outcome(timed_out=True) == ("done", None)
    timing.write_text('{"event": "end", "status": "failed"}\n')
    assert outcome(stopped=True)[0] == "stopped"


def test_printable_defuses_terminal_escapes_from_a_remote_log() -> None:
    from orchestrator.task_run import printable

    text = "epoch 1\x1b]0;pwned\x07 \x1b[2J\x9b31m\ttab\r\nnext é\n"
    out = printable(text)
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    assert out == "epoch 1\\x1b]0;pwned\\x07 \\x1b[2J\\x9b31m\ttab\r\nnext é\n"


def test_the_measure_entry_runs_the_wrapper_without_site_or_runpy(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = [
        sys.executable,
        "-S",
        "-c",
        MEASURE_ENTRY,
        "--out",
        str(out),
        "--",
        "sh",
        "-c",
        "exit 3",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "ORCHESTRATE_PARAMS": '{"lr": 0.5}'}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    record = json.loads((out / "process.json").read_text())
    assert record["exit_code"] == 3 and record["command"] == ["sh", "-c", "exit 3"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"] == {"lr": 0.5} and manifest["command"] == record["command"]


def test_the_start_prelude_makes_out_clears_stale_notices_and_marks_the_start(
    tmp_path: Path,
) -> None:
    out, started = tmp_path / "a" / "out", tmp_path / "started"
    stale = [str(out / "preempt-now"), str(out / "preempted.json")]
    text = start_prelude(str(out), stale=stale, started=str(started))
    subprocess.run(["sh", "-c", text], check=True)  # nothing there yet: made, nothing removed
    assert out.is_dir() and started.exists()
    (out / "preempt-now").touch()
    (out / "preempted.json").symlink_to(tmp_path / "gone")  # a dangling link goes too
    (out / "keep.txt").touch()
    subprocess.run(["sh", "-c", text], check=True)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    (tmp_path / "a" / "blocked").touch()
    bad = start_prelude(str(tmp_path / "a" / "blocked" / "out"), stale=[], started=str(started))
    assert subprocess.run(["sh", "-c", bad], capture_output=True).returncode != 0


# A staged setup's wait (ami.stages), run by the shell for real.
def _sh(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)


def test_the_wait_is_nothing_on_a_machine_set_up_whole() -> None:
    assert ready_wait(MACHINE, "theano") == "" and ready_wait(MACHINE, None) == ""


def test_the_wait_returns_on_the_marker_and_fails_on_failed(tmp_path: Path) -> None:
    ready = tmp_path / "it's ready"  # a quote in the path
    ready.mkdir()
    machine = replace(MACHINE, setup_ready_dir=str(ready))
    threading.Timer(0.5, (ready / "tensorflow").touch).start()
    t0 = time.monotonic()
    assert _sh(ready_wait(machine, "tensorflow") + " && echo went").stdout == "went\n"
    assert time.monotonic() - t0 >= 0.4
    (ready / FAILED).write_text("1\n")
    done = _sh(ready_wait(machine, None) + " && echo went")  # None: every stage
    assert done.returncode == 1 and "went" not in done.stdout
    assert "setup failed before every framework was installed" in done.stderr
