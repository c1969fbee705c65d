"""Running the real ``orchestrate`` command line as a child process, as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def orchestrate(
    args: list[str], env: dict[str, str], cwd: Path, *, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def last_json(proc: subprocess.CompletedProcess[str]) -> Any:
    """The final JSON line of ``--json`` output (the run's summary)."""
    return json.loads(proc.stdout.strip().splitlines()[-1])
