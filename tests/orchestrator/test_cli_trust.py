"""Small things that cost a newcomer trust: help for every flag, clean usage errors, no ``nan``,
no made-up ``:0:0`` position."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from orchestrator.cli import build_parser, main
from orchestrator.state import Journal


def _actions(parser: argparse.ArgumentParser, path: str = "orchestrate") -> list[tuple[str, str]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _actions(sub, f"{path} {name}")
        elif action.dest != "help":
            found.append((path, "/".join(action.option_strings) or action.dest))
            if not action.help:
                found[-1] = (path, found[-1][1] + " HAS NO HELP")
    return found


def test_every_flag_and_argument_has_help() -> None:
    missing = [f"{cmd}: {what}" for cmd, what in _actions(build_parser()) if "NO HELP" in what]
    assert not missing, "\n".join(missing)


def test_logs_of_an_unknown_task_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = Journal.in_dir(tmp_path)
    journal.create_run("r1", name="r", spec_path="x.yaml", provider="local", runs_dir=str(tmp_path))
    journal.add_task(
        "r1", "pca-theano-cpu", machine="local", trainer="pca", device="cpu", params={}
    )
    journal.close()
    assert main(["logs", "r1", "pca-theano-cpuu", "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no task 'pca-theano-cpuu'" in err and "did you mean 'pca-theano-cpu'" in err


def test_ami_list_without_a_region_names_region(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert main(["ami", "list", "--state-dir", str(tmp_path)]) == 2
    assert "--region" in capsys.readouterr().err


def test_prices_never_prints_nan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "nan" not in out.lower() and "p4d.24xlarge" in out  # us-east-1 only: "-" elsewhere


def test_a_missing_file_is_not_placed_at_0_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", str(tmp_path / "nope.yaml"), "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert ":0:0" not in err and "nope.yaml" in err and "cannot read the file" in err
    from orchestrator.errors import SpecIssue

    assert str(SpecIssue("f.yaml", 0, 0, "", "gone")) == "f.yaml: gone"  # line 0: the whole file


def test_the_trainers_commit_travels_with_the_shipped_copy(tmp_path: Path) -> None:
    import subprocess

    from orchestrator.cli.run import git_revision_env

    repo = Path(__file__).resolve().parents[2]
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    env = git_revision_env(repo / "trainers")
    assert env["ORCHESTRATE_GIT_COMMIT"] == head.stdout.decode().strip()
    assert env["ORCHESTRATE_GIT_DIRTY"] in ("0", "1")
    assert git_revision_env(tmp_path) == {}  # not a checkout: nothing claimed
