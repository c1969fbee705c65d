"""A task's checkpoints in S3, so they outlive the machine that wrote them (issue 16).

A spot machine can vanish with the task's files on it; what the engine pushes here survives,
and the next attempt, on new capacity, pulls it back and resumes. Objects are
``<prefix>/<task_id>/<relative path>`` under the store's URL (``checkpoint_store_for`` puts the
run id at the end of the prefix).

Only what changed moves. A file is the same as its object when the sizes match and the
file's ETag, computed here the way S3 computes it for our uploads (the MD5 of a file sent in
one part; for a multipart upload the MD5 of the parts' MD5s and ``-<parts>``, at the part size
this module uploads with), equals the object's. Where S3 reports another ETag (SSE-KMS), the
store remembers what it sent or fetched in this process instead.

Errors (no such bucket, access denied, no credentials) become ``CheckpointStoreError`` naming
the bucket; the CLI prints it without a traceback.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from infra.aws.errors import error_code, translate
from infra.errors import OrchestrateError
from infra.s3_url import parse_s3_url

PART_BYTES = 8 * 1024 * 1024  # the part size and the multipart threshold of our uploads
_READ = 1024 * 1024


class CheckpointStoreError(OrchestrateError):
    """The checkpoint store cannot be used (no such bucket, access denied, no credentials):
    its message names the bucket and what to do; exit code 4 like the other remote faults."""

    exit_code = 4


def local_etag(path: Path) -> str:
    """The ETag S3 gives ``path`` uploaded by this module (see the module docstring): boto3
    sends a file of ``PART_BYTES`` or more in parts of that size."""
    parts: list[bytes] = []  # each part's MD5
    size = 0
    with path.open("rb") as f:
        while True:
            part, n = hashlib.md5(usedforsecurity=False), 0
            while n < PART_BYTES and (chunk := f.read(min(_READ, PART_BYTES - n))):
                part.update(chunk)
                n += len(chunk)
            if n == 0 and parts:
                break
            parts.append(part.digest())
            size += n
            if n < PART_BYTES:
                break
    if size < PART_BYTES:
        return parts[0].hex()
    whole = hashlib.md5(b"".join(parts), usedforsecurity=False)
    return f"{whole.hexdigest()}-{len(parts)}"


class S3Store:
    """Checkpoints in ``s3://bucket/prefix`` (the ``CheckpointStore`` of
    ``orchestrator.checkpoint_store``); ``client=None`` makes one lazily for ``region``."""

    def __init__(
        self, url: str, region: str, client: Any = None, *, profile: str | None = None
    ) -> None:
        try:
            self.bucket, self.prefix = parse_s3_url(url)
        except ValueError as exc:
            raise CheckpointStoreError(f"checkpoint store {url!r}: {exc}") from None
        self.url = url
        self.region = region
        self._client = client
        self._profile = profile
        self._known: dict[str, tuple[int, str]] = {}  # key -> (size, local ETag) sent/fetched

    @property
    def client(self) -> Any:
        """The S3 client, made on first use (a run that never checkpoints loads no boto3)."""
        if self._client is None:
            from infra.aws.session import make_session, s3_client

            with self._errors():
                self._client = s3_client(make_session(profile=self._profile, region=self.region))
        return self._client

    def push(self, task_id: str, local_dir: Path) -> int:
        """Upload the files under ``local_dir`` that differ from the task's objects; return
        how many were sent (0 when nothing changed since the last push). Objects whose file
        is gone are kept: a push never deletes what an earlier attempt saved."""
        from boto3.s3.transfer import TransferConfig  # lazily, as every boto3 import here

        config = TransferConfig(multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES)
        remote = self._listing(task_id)
        sent = 0
        for path in sorted(p for p in Path(local_dir).rglob("*") if p.is_file()):
            key = self._key(task_id, path.relative_to(local_dir).as_posix())
            mine = (path.stat().st_size, local_etag(path))
            if mine in (remote.get(key), self._known.get(key)):
                continue
            with self._errors():
                self.client.upload_file(str(path), self.bucket, key, Config=config)
            self._known[key] = mine
            sent += 1
        return sent

    def pull(self, task_id: str, local_dir: Path) -> int:
        """Download the task's objects that are missing under ``local_dir`` or differ there;
        return how many came. A key that would land outside ``local_dir`` is refused."""
        local_dir = Path(local_dir)
        got = 0
        base = self._key(task_id, "")
        for key, (size, etag) in self._listing(task_id).items():
            rel = PurePosixPath(key[len(base) :])
            if rel.is_absolute() or ".." in rel.parts or not rel.parts:
                raise CheckpointStoreError(
                    f"checkpoint store s3://{self.bucket}: refused the object {key!r}: "
                    f"it would land outside {local_dir}"
                )
            path = local_dir.joinpath(*rel.parts)
            if path.is_file() and path.stat().st_size == size:
                mine = (size, local_etag(path))
                if etag == mine[1] or self._known.get(key) == mine:
                    continue
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            os.close(fd)
            try:
                with self._errors():
                    self.client.download_file(self.bucket, key, tmp)
                os.replace(tmp, path)  # a reader never sees half a checkpoint
            finally:
                Path(tmp).unlink(missing_ok=True)
            self._known[key] = (size, local_etag(path))
            got += 1
        return got

    def _key(self, task_id: str, rel: str) -> str:
        return "/".join(p for p in (self.prefix, task_id, rel) if p) + ("" if rel else "/")

    def _listing(self, task_id: str) -> dict[str, tuple[int, str]]:
        """The task's objects: key -> (size, ETag without its quotes)."""
        out: dict[str, tuple[int, str]] = {}
        with self._errors():
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(task_id, "")
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    out[str(obj["Key"])] = (int(obj["Size"]), str(obj["ETag"]).strip('"'))
        return out

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """botocore's errors as ``CheckpointStoreError``s that name the bucket."""
        where = f"checkpoint store s3://{self.bucket}/{self.prefix}".rstrip("/")
        try:
            yield
        except Exception as exc:
            cause = getattr(exc, "__cause__", None) or exc  # boto3's S3UploadFailedError wraps
            code = error_code(cause) or error_code(exc) or _code_in(str(exc))
            if code in ("NoSuchBucket", "404", "NotFound"):
                message = f"no S3 bucket named {self.bucket!r}: create it, or fix `checkpoints:`"
            elif code in ("AccessDenied", "403", "AllAccessDisabled", "AccessDeniedException"):
                message = (
                    f"access denied to the S3 bucket {self.bucket!r}: the identity needs "
                    f"s3:ListBucket, s3:GetObject and s3:PutObject on it"
                )
            else:
                ours = translate(cause, service="s3", region=self.region)
                if ours is None and not type(exc).__module__.startswith(("boto", "s3transfer")):
                    raise
                message = str(ours or exc)
            raise CheckpointStoreError(f"{where}: {message}") from exc


def _code_in(text: str) -> str:
    """The error code boto3 folds into an upload failure's text (``... (NoSuchBucket) ...``)."""
    for code in ("NoSuchBucket", "AccessDenied"):
        if f"({code})" in text:
            return code
    return ""
