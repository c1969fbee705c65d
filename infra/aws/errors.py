"""The one place botocore exceptions become ours (httpx's ``map_httpcore_exceptions``).

``translate`` maps an exception to our error tree, ``aws_errors`` is the context manager the
provider wraps each call in. The table is data, so a new EC2 error code is one line:

    ClientError code                         ->  our class
    InsufficientInstanceCapacity, ...        ->  CapacityError   (try the next type / zone)
    VcpuLimitExceeded, MaxSpotInstance...    ->  QuotaError      (names the quota + console URL)
    AuthFailure, expired/invalid tokens      ->  CredentialsError
    UnauthorizedOperation, AccessDenied      ->  ProviderError   (names the missing IAM action)
    NoCredentialsError, ProfileNotFound      ->  CredentialsError
    anything else from botocore              ->  ProviderError
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from infra.errors import (
    CapacityError,
    CredentialsError,
    OrchestrateError,
    ProviderError,
    QuotaError,
)

CONFIGURE_HINT = "run `aws configure` or set AWS_PROFILE"

# Codes after which another instance type, zone or market may well succeed.
CAPACITY_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientFreeAddressesInSubnet",
        "Unsupported",  # this type is not offered in this zone
        "SpotMaxPriceTooLow",
        "InsufficientCapacityOnOutpost",
    }
)

QUOTA_CODES = frozenset(
    {"VcpuLimitExceeded", "MaxSpotInstanceCountExceeded", "InstanceLimitExceeded"}
)

CREDENTIAL_CODES = frozenset(
    {
        "AuthFailure",
        "InvalidClientTokenId",
        "ExpiredToken",
        "RequestExpired",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "MissingAuthenticationToken",
        "InvalidToken",
    }
)

PERMISSION_CODES = frozenset({"UnauthorizedOperation", "AccessDenied", "AccessDeniedException"})

# Service Quotas codes per (instance family group, market). Running quotas are counted in vCPUs
# per family group, so raising "G and VT" covers g4dn, g5 and g6 alike.
# https://docs.aws.amazon.com/ec2/latest/instancetypes/ec2-instance-quotas.html
_QUOTAS: dict[tuple[str, bool], tuple[str, str]] = {
    ("standard", False): (
        "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
        "L-1216C47A",
    ),
    ("g", False): ("Running On-Demand G and VT instances", "L-DB2E81BA"),
    ("p", False): ("Running On-Demand P instances", "L-417A185B"),
    ("inf", False): ("Running On-Demand Inf instances", "L-1945791B"),
    ("standard", True): (
        "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests",
        "L-34B43A08",
    ),
    ("g", True): ("All G and VT Spot Instance Requests", "L-3819A6DF"),
    ("p", True): ("All P Spot Instance Requests", "L-7212CCBC"),
    ("inf", True): ("All Inf Spot Instance Requests", "L-B5D1601B"),
}


def quota_for(instance_type: str | None, *, spot: bool) -> tuple[str, str]:
    """The (quota name, Service Quotas code) that limits launching ``instance_type``."""
    family = re.match(r"[a-z]+", instance_type or "")
    prefix = family.group(0) if family else ""
    if prefix.startswith("inf"):
        group = "inf"
    elif prefix.startswith(("g", "vt")):
        group = "g"
    elif prefix.startswith("p"):
        group = "p"
    else:
        group = "standard"
    return _QUOTAS[(group, spot)]


def quota_url(code: str, region: str | None) -> str:
    """The Service Quotas console page where that quota's increase is requested."""
    host = f"{region}.console.aws.amazon.com" if region else "console.aws.amazon.com"
    return f"https://{host}/servicequotas/home/services/ec2/quotas/{code}"


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (or ``""`` for anything else)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def translate(
    exc: BaseException,
    *,
    service: str = "ec2",
    instance_type: str | None = None,
    spot: bool = False,
    region: str | None = None,
) -> OrchestrateError | None:
    """Our error for a botocore exception, or None when ``exc`` is not from botocore.

    Args:
        service: the IAM service prefix used to name a missing action (``ec2:RunInstances``).
        instance_type, spot, region: context for quota and capacity messages.
    """
    if isinstance(exc, OrchestrateError):
        return exc
    kind = type(exc).__name__
    if kind in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return CredentialsError(f"no usable AWS credentials: {CONFIGURE_HINT}")
    if kind == "ProfileNotFound":
        return CredentialsError(f"{exc}: {CONFIGURE_HINT}")
    if kind == "NoRegionError":
        return ProviderError("no AWS region: set `region:` in the experiment or AWS_REGION")
    if kind == "EndpointConnectionError":
        return ProviderError(f"cannot reach AWS: {exc}")
    code = error_code(exc)
    if not code:
        return ProviderError(str(exc)) if type(exc).__module__.startswith("botocore") else None
    message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", "")) or str(exc)
    operation = str(getattr(exc, "operation_name", "") or "")
    where = f" ({instance_type}{' spot' if spot else ''}{f' in {region}' if region else ''})"
    if code in CAPACITY_CODES:
        return CapacityError(f"{code}{where if instance_type else ''}: {message}")
    if code in QUOTA_CODES:
        name, quota_code = quota_for(instance_type, spot=spot)
        return QuotaError(
            f"{code}{where if instance_type else ''}: {message}\n"
            f"raise the quota {name!r} ({quota_code}) at {quota_url(quota_code, region)}"
        )
    if code in CREDENTIAL_CODES:
        return CredentialsError(f"{code}: {message}: {CONFIGURE_HINT}")
    if code in PERMISSION_CODES:
        action = f"{service}:{operation}" if operation else "the requested action"
        return ProviderError(
            f"your AWS identity may not call {action} ({code}); grant it in IAM "
            f"(an encoded message decodes with `aws sts decode-authorization-message`)"
        )
    return ProviderError(f"{code}: {message}")


@contextmanager
def aws_errors(
    *,
    service: str = "ec2",
    instance_type: str | None = None,
    spot: bool = False,
    region: str | None = None,
) -> Iterator[None]:
    """Re-raise botocore exceptions from the block as ours, ``from`` the original."""
    try:
        yield
    except Exception as exc:
        ours = translate(
            exc, service=service, instance_type=instance_type, spot=spot, region=region
        )
        if ours is None or ours is exc:
            raise
        raise ours from exc
