"""The report on a recorded run of the real PCA trainers (both frameworks, GPU variants skipped)."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.report import build_report
from orchestrator.report.load import load_run
from orchestrator.report.render import to_markdown, write_outputs
from tests.orchestrator.report.conftest import copy_run


def test_recorded_pca_run_reports_accuracy_against_numpy(tmp_path: Path) -> None:
    run_dir = copy_run("pca-local", tmp_path / "runs")
    run = load_run(run_dir)
    done = {t.task_id: t for t in run.tasks if t.status == "done"}
    assert set(done) == {"pca-tensorflow-cpu", "pca-theano-cpu"}
    for task in done.values():
        assert task.pca is not None and len(task.pca.components) == 5
        for comp in task.pca.components:
            assert comp.eigenvalue_numpy is not None and comp.rel_error is not None
            assert comp.rel_error < 1e-4 and comp.angle_deg is not None and comp.angle_deg < 1.0
        values = [c.eigenvalue for c in task.pca.components]
        assert values == sorted(values, reverse=True)
    skipped = [t for t in run.tasks if t.status == "skipped"]
    assert {t.device for t in skipped} == {"gpu"} and all(
        "GPU" in (t.detail or "") for t in skipped
    )

    report = build_report(run_dir, plots_dir=tmp_path / "out")
    written = write_outputs(report, tmp_path / "out", html=False)
    md = to_markdown(report, plot_dir=tmp_path / "out")
    tf = done["pca-tensorflow-cpu"].pca
    assert tf is not None
    assert f"{tf.components[0].eigenvalue:.4g}" in md
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert "pca-theano-cpu" in json.dumps(results)
    assert any(Path(p).name == "pca_spectrum.png" for p in (x.path for x in report.plots))
    assert written
