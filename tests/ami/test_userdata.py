from __future__ import annotations

import os
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from ami.spec import ImageSpec
from ami.userdata import (
    HostKey,
    UserDataError,
    render_user_data,
    setup_commands,
    shutdown_command,
)

DEADLINE = datetime(2030, 1, 1, 14, 0, tzinfo=UTC)


def _shim(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2030, 1, 1, 12, 0, tzinfo=UTC), "+120"),  # two hours left
        (datetime(2030, 1, 1, 13, 59, 30, tzinfo=UTC), "+1"),  # rounds up
        (datetime(2030, 1, 1, 15, 0, tzinfo=UTC), "+1"),  # booted after the deadline
    ],
)
def test_shutdown_timer_counts_down_to_the_deadline(
    tmp_path: Path, now: datetime, expected: str
) -> None:
    # Run the real shell line with `date` and `shutdown` replaced by shims on PATH.
    _shim(tmp_path, "date", f"echo {int(now.timestamp())}")
    _shim(tmp_path, "shutdown", 'echo "$@"')
    out = subprocess.run(
        ["sh", "-c", shutdown_command(DEADLINE)],
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split()[:2] == ["-h", expected]


def test_cloud_config_arms_timer_at_every_boot_and_pins_host_key() -> None:
    key = HostKey(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----",
        "ssh-ed25519 AAAAC3Nza",
    )
    text = render_user_data(deadline=DEADLINE, host_key=key)
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    assert "shutdown -h" in doc["bootcmd"][0][2]
    assert doc["ssh_keys"]["ed25519_public"] == "ssh-ed25519 AAAAC3Nza"
    assert doc["ssh_genkeytypes"] == [] and doc["ssh_deletekeys"] is True
    assert {
        "path": "/etc/orchestrate/deadline",
        "content": "2030-01-01T14:00:00Z\n",
        "permissions": "0644",
    } in doc["write_files"]
    assert "runcmd" not in doc


def test_rendering_is_deterministic() -> None:
    assert render_user_data(deadline=DEADLINE) == render_user_data(deadline=DEADLINE)


def test_setup_runs_once_with_log_and_exit_code() -> None:
    spec = ImageSpec(name="t", flavour="cpu", packages=("numpy",), setup=("echo extra",))
    script = setup_commands(spec)
    assert "bash /tmp/orchestrate-setup-flavour.sh python3.11 /opt/orchestrate/venv numpy" in script
    assert script.rstrip().endswith("echo extra")
    doc = yaml.safe_load(render_user_data(deadline=DEADLINE, setup=script))
    assert "setup.exit" in doc["runcmd"][0][2]


@pytest.mark.parametrize(
    "secret",
    ["export AWS_SECRET_ACCESS_KEY=abc", "aws_session_token = x", "key AKIAABCDEFGHIJKLMNOP"],
)
def test_credentials_are_refused(secret: str) -> None:
    with pytest.raises(UserDataError, match="never carry AWS credentials"):
        render_user_data(deadline=DEADLINE, setup=f"echo hi\n{secret}\n")


def test_oversize_user_data_is_refused() -> None:
    with pytest.raises(UserDataError, match="at most 16384"):
        render_user_data(deadline=DEADLINE, setup="#" * 17000)


def test_setup_scripts_are_valid_bash() -> None:
    for flavour in ("cpu", "cuda"):
        script = setup_commands(ImageSpec(name="t", flavour=flavour))
        subprocess.run(["bash", "-n"], input=script, text=True, check=True)
