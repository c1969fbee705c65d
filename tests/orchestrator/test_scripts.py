"""``run:`` jobs: validation, matrix substitution, workdir selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.matrix import expand
from orchestrator.specfile import parse_experiment
from orchestrator.workdir import select_workdir


def _parse(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return parse_experiment(text, str(path))


def test_bad_script_jobs_are_located_errors(tmp_path: Path) -> None:
    text = (
        "name: s\nworkdir: nowhere\njobs:\n"
        "  - name: sweep\n"
        "    run: python train.py --lr {lr} --batch {bacth} --seed {seed}\n"
        "    params: {lr: [0.1], batch: [], seed: [1]}\n"
        "    outputs: ['$(rm -rf ~)']\n"
    )
    with pytest.raises(SpecError) as info:
        _parse(tmp_path, text)
    issues = {i.path: i for i in info.value.issues}
    assert "unknown placeholder '{bacth}'" in issues["jobs[0].run"].message
    assert issues["jobs[0].run"].hint == "did you mean '{batch}'?"
    assert issues["jobs[0].run"].line == 5
    assert "empty list" in issues["jobs[0].params.batch"].message
    assert issues["jobs[0].params.batch"].line == 6
    assert "not a relative path glob" in issues["jobs[0].outputs[0]"].message
    assert "does not exist" in issues["workdir"].message and issues["workdir"].line == 2


def test_trainer_and_run_are_exclusive_and_one_is_needed(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        _parse(tmp_path, "name: s\njobs:\n  - name: a\n  - trainer: pca\n    run: echo\n")
    messages = [i.message for i in info.value.issues]
    assert any("needs 'trainer:'" in m for m in messages)
    assert any("not both" in m for m in messages)


def test_params_are_shell_quoted_and_ids_readable(tmp_path: Path) -> None:
    exp = _parse(
        tmp_path,
        "name: s\njobs:\n  - name: sweep\n    run: echo {tag} {lr}\n"
        "    params: {tag: ['a b; rm -rf /'], lr: [0.1, 0.01]}\n    device: [cpu, gpu]\n",
    )
    tasks = expand(exp)
    assert [t.id for t in tasks] == [
        "sweep-lr0.1-cpu",
        "sweep-lr0.01-cpu",
        "sweep-lr0.1-gpu",
        "sweep-lr0.01-gpu",
    ]
    assert tasks[0].command == "echo 'a b; rm -rf /' 0.1"
    assert tasks[0].params == {"tag": "a b; rm -rf /", "lr": 0.1}
    argv = tasks[0].argv(python="/venv/bin/python", out="/o", data_dir=None)
    assert argv[:2] == ["sh", "-c"] and 'PATH=/venv/bin:"$PATH"' in argv[2]
    assert argv[2].startswith('python() { command /venv/bin/python "$@"; }')


def test_workdir_honours_ignore_files_and_refuses_secrets(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.py").write_text("x = 1\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "big.bin").write_bytes(b"0" * 10)
    (tmp_path / ".gitignore").write_text("data/\n*.log\n")
    (tmp_path / "run.log").write_text("noise")
    (tmp_path / ".orchestrateignore").write_text("notes.txt\n")
    (tmp_path / "notes.txt").write_text("private")
    sel = select_workdir(tmp_path, ship_secrets=[], spec_file="exp.yaml")
    assert set(sel.files) == {".gitignore", ".orchestrateignore", "src/model.py", "train.py"}
    assert "data" in sel.exclude and "run.log" in sel.exclude and "notes.txt" in sel.exclude

    (tmp_path / ".env").write_text("AWS_SECRET_ACCESS_KEY=x")
    (tmp_path / "deploy.pem").write_text("-----BEGIN")
    with pytest.raises(SpecError) as info:
        select_workdir(tmp_path, ship_secrets=[], spec_file="exp.yaml")
    assert ".env" in str(info.value) and "deploy.pem" in str(info.value)
    allowed = select_workdir(tmp_path, ship_secrets=[".env", "deploy.pem"], spec_file="exp.yaml")
    assert ".env" in allowed.files
