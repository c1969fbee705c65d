"""``run:`` placeholders: only ``{name}``, never inside quotes; matrix and bound rules."""

from __future__ import annotations

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec_limits import command_issues, quoted_placeholders
from orchestrator.specfile import parse_experiment


@pytest.mark.parametrize(
    "command",
    [
        "python t.py --lr {lr}",
        "python t.py --lr={lr} --tag run-{lr}",
        "echo '{{literal}}' {lr}",
        "python -c 'import json; print(json.dumps({{}}))' {lr}",
        'echo "$HOME"/{lr}',
        "echo 'it''s' {lr}",
        'echo "a \\" b" {lr}',
    ],
)
def test_safe_commands_pass(command: str) -> None:
    assert list(command_issues(command, ["lr"])) == []


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("echo '{lr}'", "inside quotes"),
        ('echo "{lr}"', "inside quotes"),
        ("sh -c 'train --lr={lr}'", "inside quotes"),
        ('echo "x $(echo {lr})"', "inside quotes"),
        ("echo {0}", "not a placeholder"),
        ("echo {}", "not a placeholder"),
        ("echo {lr.real}", "not a placeholder"),
        ("echo {lr[0]}", "not a placeholder"),
        ("echo {lr:>10}", "no format spec"),
        ("echo {lr!r}", "no format spec"),
        ("echo {lr", "cannot read"),
        ("echo }", "cannot read"),
    ],
)
def test_unsafe_commands_are_refused(command: str, words: str) -> None:
    messages = [m for m, _ in command_issues(command, ["lr"])]
    assert messages and any(words in m for m in messages)


def test_quoted_placeholders_names_them() -> None:
    assert quoted_placeholders("a '{x}' {y} \"{z}\" {{w}}") == ["x", "z"]


def test_a_quoted_placeholder_is_located_in_the_file() -> None:
    text = "name: q\nworkdir: .\njobs:\n  - run: echo '{v}'\n    params: {v: [1, 2]}\n"
    with pytest.raises(SpecError) as caught:
        parse_experiment(text, "q.yaml")
    assert "q.yaml:4:10: jobs[0].run: placeholder '{v}' is inside quotes" in str(caught.value)
