"""Shared by the trainer tests."""

from tests.framework_tmp import generated_sources_in_pytest_tmp  # noqa: F401  # autouse
