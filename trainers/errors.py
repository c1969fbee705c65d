"""Trainer errors and the exit codes of the trainer process contract.

exit 0 ok · 2 bad input (arguments, data file, checksum) · 3 requested device unavailable.
"""

from __future__ import annotations


class TrainerError(Exception):
    """Something the user can fix; printed as one line, never with a traceback."""

    exit_code = 2


class BadArgument(TrainerError):
    """An argument is out of range or names nothing we know."""


class DataError(TrainerError):
    """The data set is missing, corrupt, or fails its checksum."""


class DeviceUnavailable(TrainerError):
    """``--device gpu`` was asked for and no GPU is usable; never silently run on the CPU."""

    exit_code = 3
