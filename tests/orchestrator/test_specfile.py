from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.specfile import load_experiment, parse_experiment

DATA = Path(__file__).resolve().parents[1] / "data" / "experiments"


def test_broken_file_reports_every_error_with_its_position() -> None:
    with pytest.raises(SpecError) as info:
        load_experiment(DATA / "broken.yaml")
    expected = (DATA / "broken.expected").read_text().strip()
    relative = str(info.value).replace(
        str(DATA / "broken.yaml"), "tests/data/experiments/broken.yaml"
    )
    assert "error: " + relative == expected


def test_issue_fields_are_structured() -> None:
    with pytest.raises(SpecError) as info:
        parse_experiment("name: x\njobs:\n  - trainer: mnist\n    optimizer: nesterow\n", "f.yaml")
    (issue,) = info.value.issues
    assert (issue.file, issue.line, issue.column) == ("f.yaml", 4, 16)
    assert issue.path == "jobs[0].optimizer[0]"
    assert issue.hint is not None and "nesterov" in issue.hint


def test_yaml_syntax_error_is_located() -> None:
    with pytest.raises(SpecError) as info:
        parse_experiment("name: x\njobs: [\n  - a: b\n", "bad.yaml")
    assert info.value.issues[0].line >= 2
    assert "not valid YAML" in info.value.issues[0].message


def test_missing_required_fields() -> None:
    with pytest.raises(SpecError) as info:
        parse_experiment("provider: local\n", "m.yaml")
    messages = [i.message for i in info.value.issues]
    assert "required field 'name' is missing" in messages
    assert "required field 'jobs' is missing" in messages


def test_provider_needs_its_section() -> None:
    text = "name: x\nprovider: aws\njobs:\n  - trainer: pca\n"
    with pytest.raises(SpecError) as info:
        parse_experiment(text, "a.yaml")
    assert info.value.issues[0].line == 2
    assert "machines" in info.value.issues[0].message


def test_scalars_become_single_value_axes() -> None:
    exp = parse_experiment(
        "name: x\njobs:\n  - trainer: mnist\n    optimizer: adam\n    hidden: [300, [300, 100]]\n",
        "ok.yaml",
    )
    job = exp.jobs[0]
    assert job.optimizer == ["adam"]
    assert job.hidden == [[300], [300, 100]]
    assert job.device == ["cpu"]


def test_the_unused_report_key_is_gone() -> None:
    """``report.compare`` was accepted and read by nothing (issue 15): it is refused now,
    located, like any unknown key."""
    text = "name: x\njobs:\n  - trainer: pca\nreport:\n  compare: [device]\n"
    with pytest.raises(SpecError) as info:
        parse_experiment(text, "x.yaml")
    assert "report" in str(info.value) and "x.yaml:4" in str(info.value)
