"""``checkpoints: s3://bucket[/prefix]``: accepted as written, refused located when it is not."""

from __future__ import annotations

import pytest

from orchestrator.errors import SpecError
from orchestrator.specfile import parse_experiment

BASE = "name: x\njobs:\n  - trainer: mnist\n"


@pytest.mark.parametrize(
    "url",
    ["s3://my-bucket", "s3://my-bucket/", "s3://my.bucket-1/runs/nightly", "s3://abc/a/b/c/"],
)
def test_a_good_location_is_kept_as_written(url: str) -> None:
    assert parse_experiment(BASE + f"checkpoints: {url}\n", "x.yaml").checkpoints == url


def test_absent_means_no_store() -> None:
    assert parse_experiment(BASE, "x.yaml").checkpoints is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("gs://bucket/p", "not an S3 location"),
        ("bucket/p", "not an S3 location"),
        ("s3://", "'' is not a valid bucket name"),
        ("s3://ab", "'ab' is not a valid bucket name"),
        ("s3://My_Bucket/p", "'My_Bucket' is not a valid bucket name"),
        ("s3://-bucket", "is not a valid bucket name"),
        ("s3://a..b", "is not a valid bucket name"),
        ("s3://192.168.1.1/p", "is not a valid bucket name"),
        ("s3://" + "a" * 64, "is not a valid bucket name"),
        ("s3://xn--bucket", "reserves"),
        ("s3://bucket-s3alias", "reserves"),
        ("s3://bucket/a//b", "empty, '.' or '..' part"),
        ("s3://bucket/a/../b", "empty, '.' or '..' part"),
    ],
)
def test_a_bad_location_is_located_and_says_what_is_valid(url: str, why: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_experiment(BASE + f"checkpoints: '{url}'\n", "x.yaml")
    (issue,) = info.value.issues
    assert (issue.file, issue.line, issue.path) == ("x.yaml", 4, "checkpoints")
    assert why in issue.message and "valid: s3://<bucket>[/<prefix>]" in issue.message
    assert info.value.exit_code == 2
    assert str(info.value).splitlines()[1].startswith("  x.yaml:4:14: checkpoints: ")


def test_not_a_string_is_refused_too() -> None:
    with pytest.raises(SpecError) as info:
        parse_experiment(BASE + "checkpoints: [s3://a]\n", "x.yaml")
    assert info.value.issues[0].path == "checkpoints"
