"""``s3://bucket/prefix``: the one grammar of an S3 location, shared by the experiment schema
(which refuses a bad one at load, located) and the checkpoint store (which writes there).

Pure and boto3-free, so validating an experiment file never loads an SDK. Bucket names follow
AWS's rules for general purpose buckets: 3 to 63 characters of lowercase letters, digits, dots
and hyphens, starting and ending with a letter or digit, no two dots together, not shaped
like an IP address, none of the reserved prefixes and suffixes.
"""

from __future__ import annotations

import re

FORM = "s3://<bucket>[/<prefix>]"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_RESERVED = (("xn--", "sthree-", "amzn-s3-demo-"), ("-s3alias", "--ol-s3", ".mrap", "--x-s3"))


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b/`` -> ``("bucket", "a/b")``: what a store needs to name its keys.

    Raises:
        ValueError: with what is wrong and the valid form, for the schema to locate.
    """
    if not url.startswith("s3://"):
        raise ValueError(f"not an S3 location; valid: {FORM}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket or _IP.match(bucket):
        raise ValueError(
            f"{bucket!r} is not a valid bucket name (3-63 lowercase letters, digits, dots, "
            f"hyphens; starts and ends with a letter or digit); valid: {FORM}"
        )
    if bucket.startswith(_RESERVED[0]) or bucket.endswith(_RESERVED[1]):
        raise ValueError(f"{bucket!r} uses a prefix or suffix AWS reserves; valid: {FORM}")
    prefix = prefix.strip("/")
    if any(not part or part in (".", "..") for part in prefix.split("/")) and prefix:
        raise ValueError(f"the prefix {prefix!r} has an empty, '.' or '..' part; valid: {FORM}")
    if any(ord(c) < 32 or ord(c) == 127 for c in prefix):
        raise ValueError(f"the prefix has a control character; valid: {FORM}")
    return bucket, prefix
