from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, NoCredentialsError

from infra.aws.errors import aws_errors, translate
from infra.errors import CapacityError, CredentialsError, ProviderError, QuotaError


def _client_error(code: str, op: str = "RunInstances") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "msg"}}, op)


def test_capacity_is_retryable_class() -> None:
    assert isinstance(translate(_client_error("InsufficientInstanceCapacity")), CapacityError)
    assert isinstance(translate(_client_error("Unsupported")), CapacityError)


@pytest.mark.parametrize(
    ("code", "itype", "spot", "quota", "url_code"),
    [
        (
            "VcpuLimitExceeded",
            "g4dn.xlarge",
            False,
            "Running On-Demand G and VT instances",
            "L-DB2E81BA",
        ),
        (
            "MaxSpotInstanceCountExceeded",
            "g5.xlarge",
            True,
            "All G and VT Spot Instance Requests",
            "L-3819A6DF",
        ),
        ("VcpuLimitExceeded", "c6i.2xlarge", False, "Running On-Demand Standard", "L-1216C47A"),
        ("VcpuLimitExceeded", "p3.2xlarge", False, "Running On-Demand P instances", "L-417A185B"),
    ],
)
def test_quota_names_the_quota_and_the_console_page(
    code: str, itype: str, spot: bool, quota: str, url_code: str
) -> None:
    err = translate(_client_error(code), instance_type=itype, spot=spot, region="us-east-1")
    assert isinstance(err, QuotaError)
    assert quota in str(err)
    assert (
        f"https://us-east-1.console.aws.amazon.com/servicequotas/home/services/ec2/quotas/{url_code}"
        in str(err)
    )


def test_unauthorized_names_the_action() -> None:
    err = translate(_client_error("UnauthorizedOperation", "TerminateInstances"))
    assert type(err) is ProviderError and "ec2:TerminateInstances" in str(err)


def test_missing_credentials_say_what_to_do() -> None:
    err = translate(NoCredentialsError())
    assert isinstance(err, CredentialsError) and "aws configure" in str(err)
    assert isinstance(translate(_client_error("AuthFailure")), CredentialsError)


def test_context_manager_chains_the_original() -> None:
    original = _client_error("InsufficientInstanceCapacity")
    with pytest.raises(CapacityError) as info, aws_errors(instance_type="g5.xlarge"):
        raise original
    assert info.value.__cause__ is original
    assert "g5.xlarge" in str(info.value)


def test_foreign_exceptions_pass_through() -> None:
    with pytest.raises(KeyError), aws_errors():
        raise KeyError("not ours to translate")
