"""The S3 checkpoint store against moto's stateful S3: only what changed moves, both ways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.aws.checkpoints import PART_BYTES, CheckpointStoreError, S3Store, local_etag
from orchestrator.checkpoint_store import NoStore, checkpoint_store_for
from orchestrator.specfile import parse_experiment
from tests.infra.aws.conftest import REGION

BUCKET = "ckpt-bucket"


@pytest.fixture
def s3(mocked_aws: None) -> Any:
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET)
    return client


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_push_sends_only_what_changed_and_pull_brings_it_back(s3: Any, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", {"ckpt/step-1.npz": b"a" * 100, "state.json": b"{}"})
    store = S3Store(f"s3://{BUCKET}/exp/run-1", REGION, client=s3)
    assert store.push("task-a", src) == 2
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys == {"exp/run-1/task-a/ckpt/step-1.npz", "exp/run-1/task-a/state.json"}
    assert store.push("task-a", src) == 0
    (src / "state.json").write_bytes(b'{"step": 2}')
    assert store.push("task-a", src) == 1
    # A new orchestrator (no memory of what was sent) compares against the objects' ETags.
    fresh = S3Store(f"s3://{BUCKET}/exp/run-1", REGION, client=s3)
    assert fresh.push("task-a", src) == 0

    empty = tmp_path / "empty"
    assert fresh.pull("task-a", empty) == 2
    assert _files(empty) == _files(src)
    assert fresh.pull("task-a", empty) == 0

    older = _tree(tmp_path / "older", {"state.json": b"{}", "ckpt/step-1.npz": b"a" * 100})
    (older / "mine.txt").write_text("not in the store")
    assert fresh.pull("task-a", older) == 1  # only state.json differs
    assert _files(older) == {**_files(src), "mine.txt": b"not in the store"}
    assert fresh.pull("task-b", tmp_path / "nothing") == 0  # another task's files are apart


def test_a_big_file_is_compared_by_its_multipart_etag(s3: Any, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", {"big.bin": b"x" * (PART_BYTES + 1000)})
    assert local_etag(src / "big.bin").endswith("-2")
    store = S3Store(f"s3://{BUCKET}", REGION, client=s3)
    assert store.push("t", src) == 1
    head = s3.head_object(Bucket=BUCKET, Key="t/big.bin")
    assert head["ETag"].strip('"') == local_etag(src / "big.bin")
    assert S3Store(f"s3://{BUCKET}", REGION, client=s3).push("t", src) == 0


def test_a_missing_bucket_is_a_clear_error_naming_it(s3: Any, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", {"a": b"1"})
    store = S3Store("s3://no-such-bucket-here/p", REGION, client=s3)
    for call in (store.push, store.pull):
        with pytest.raises(CheckpointStoreError) as info:
            call("t", src)
        assert "no S3 bucket named 'no-such-bucket-here'" in str(info.value)
        assert info.value.exit_code == 4


def test_access_denied_names_the_bucket_and_the_permissions(s3: Any, tmp_path: Path) -> None:
    def deny(**_: Any) -> None:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "ListObjectsV2")

    s3.meta.events.register("before-call.s3.ListObjectsV2", deny)
    with pytest.raises(CheckpointStoreError, match=f"access denied to the S3 bucket '{BUCKET}'"):
        S3Store(f"s3://{BUCKET}/p", REGION, client=s3).pull("t", tmp_path)


def test_an_object_key_that_would_escape_the_directory_is_refused(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="p/t/../../evil", Body=b"x")
    with pytest.raises(CheckpointStoreError, match="outside"):
        S3Store(f"s3://{BUCKET}/p", REGION, client=s3).pull("t", tmp_path / "in")
    assert not (tmp_path / "evil").exists()


def test_the_factory_reads_checkpoints_and_puts_the_run_id_in_the_prefix(
    aws_credentials: None,
) -> None:
    base = "name: x\njobs:\n  - trainer: mnist\n"
    assert isinstance(checkpoint_store_for(parse_experiment(base, "x.yaml"), "run-1"), NoStore)
    assert NoStore().push("t", Path(".")) == NoStore().pull("t", Path(".")) == 0
    exp = parse_experiment(base + "checkpoints: s3://bkt/some/prefix/\n", "x.yaml")
    store = checkpoint_store_for(exp, "run-1")
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix, store.region) == ("bkt", "some/prefix/run-1", REGION)
