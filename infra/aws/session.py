"""Lazy boto3: a Session and its clients, created only when AWS is actually used.

boto3 is a base dependency but is imported here, inside functions (a local plan never loads it),
and its absence becomes a ``ProviderError`` that says what to install. ``AWS_ENDPOINT_URL``
(and ``AWS_ENDPOINT_URL_EC2`` etc.) are honoured by botocore itself, which is how the
end-to-end tests point the CLI at a local moto server; nothing here needs to read them.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from infra.aws.errors import aws_errors
from infra.errors import ProviderError

if TYPE_CHECKING:
    import boto3.session
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ssm import SSMClient

INSTALL_HINT = "the aws provider needs boto3 (a base dependency): pip install -e ."

# Retries for throttling and transient faults: boto3's "standard" mode with a few more
# attempts, since a launch issues bursts of Describe* calls while it waits.
_RETRIES = {"mode": "standard", "max_attempts": 8}


def import_boto3() -> ModuleType:
    """boto3, or a ``ProviderError`` naming the extra to install."""
    try:
        import boto3
    except ImportError as exc:
        raise ProviderError(INSTALL_HINT) from exc
    return boto3


def make_session(*, profile: str | None = None, region: str | None = None) -> boto3.session.Session:
    """A boto3 Session for ``profile`` (None: the default chain) and ``region``.

    Raises:
        CredentialsError: the named profile does not exist.
        ProviderError: boto3 is not installed, or no region is configured anywhere.
    """
    sdk = import_boto3()
    with aws_errors():
        session = cast(
            "boto3.session.Session", sdk.session.Session(profile_name=profile, region_name=region)
        )
    if not session.region_name:
        raise ProviderError("no AWS region: set `region:` in the experiment or AWS_REGION")
    return session


def _config() -> Any:
    from botocore.config import Config

    return Config(retries=_RETRIES)  # type: ignore[arg-type]


def ec2_client(session: boto3.session.Session) -> EC2Client:
    """An EC2 client for the session's region, with standard retries."""
    return session.client("ec2", config=_config())


def ssm_client(session: boto3.session.Session) -> SSMClient:
    """An SSM client for the session's region (reads public AMI parameters)."""
    return session.client("ssm", config=_config())


def s3_client(session: boto3.session.Session) -> Any:
    """An S3 client for the session's region (the checkpoint store; no stubs are installed
    for S3's types, hence ``Any``)."""
    return session.client("s3", config=_config())


def configured_region(profile: str | None = None) -> str | None:
    """The region the standard chain names (``AWS_REGION``, ``AWS_DEFAULT_REGION``, the
    profile's ``region``), or None where it names none or boto3 is missing."""
    try:
        sdk = import_boto3()
        region = sdk.session.Session(profile_name=profile).region_name
    except Exception:  # ProfileNotFound, boto3 missing: no configured region
        return None
    return str(region) if region else None
