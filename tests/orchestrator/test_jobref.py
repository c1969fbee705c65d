"""JobRef: the journal's typed reference to a detached job, read back from what older
versions wrote (plain JSON with pid, job_dir, log, machine_id) as from what this one writes."""

from __future__ import annotations

from pathlib import Path

from orchestrator.state import JobRef, Journal


def test_a_job_ref_survives_the_journal(tmp_path: Path) -> None:
    journal = Journal.in_dir(tmp_path)
    journal.create_run("r", name="r", spec_path="x", provider="local", runs_dir="runs")
    journal.add_task("r", "t", machine="box", trainer="pca", device="cpu", params={})
    ref = JobRef(42, "/w/jobs/t", "/w/logs/t.log", "ssh:box:r", "box")
    journal.task_started("r", "t", ref, machine="box")
    assert journal.tasks("r")[0].job_ref == ref
    journal.setup_started("r", JobRef(7, "/w/jobs/s", "/w/logs/s.log", "ssh:box:r", "box"))
    assert [(j.pid, j.machine) for j in journal.setup_jobs("r")] == [(7, "box")]
    assert ref.job("t").pid == 42 and ref.job("t").log == "/w/logs/t.log"


def test_a_job_ref_written_by_an_older_version_still_reads() -> None:
    old = '{"pid": 5, "job_dir": "/j", "log": "/l", "machine_id": "local:r:local"}'
    assert JobRef.from_json(old) == JobRef(5, "/j", "/l", "local:r:local", "")
