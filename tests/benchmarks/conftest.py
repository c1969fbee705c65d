"""Shared by the benchmark tests."""

from tests.framework_tmp import generated_sources_in_pytest_tmp  # noqa: F401  # autouse
