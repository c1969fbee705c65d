from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from ami.spec import ImageSpec
from ami.userdata import (
    CLOUD_INIT_RESULT,
    DEADLINE_CHECK,
    HostKey,
    UserDataError,
    arm_deadline_command,
    deadline_units,
    render_user_data,
    setup_commands,
)

DEADLINE = datetime(2030, 1, 1, 14, 0, tzinfo=UTC)


def test_deadline_timer_is_a_valid_calendar_spec_at_the_absolute_deadline() -> None:
    units = deadline_units(DEADLINE)
    timer = units["/etc/systemd/system/orchestrate-deadline.timer"]
    assert "OnCalendar=2030-01-01 14:00:00 UTC" in timer and "Persistent=true" in timer
    assert "systemctl poweroff" in units["/etc/systemd/system/orchestrate-deadline.service"]
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the calendar spec is not parsed here")
    when = timer.split("OnCalendar=")[1].splitlines()[0]
    out = subprocess.run([analyze, "calendar", when], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "Normalized form: 2030-01-01 14:00:00 UTC" in out.stdout


def test_cloud_config_arms_the_timer_in_runcmd_and_pins_host_key() -> None:
    key = HostKey(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----",
        "ssh-ed25519 AAAAC3Nza",
    )
    text = render_user_data(deadline=DEADLINE, host_key=key)
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    # Not bootcmd: `shutdown -h +N` there fails before D-Bus/logind are up.
    assert "bootcmd" not in doc
    assert doc["runcmd"] == [arm_deadline_command()]
    assert "enable --now orchestrate-deadline.timer" in doc["runcmd"][0][2]
    assert doc["ssh_keys"]["ed25519_public"] == "ssh-ed25519 AAAAC3Nza"
    assert doc["ssh_genkeytypes"] == [] and doc["ssh_deletekeys"] is True
    paths = {f["path"] for f in doc["write_files"]}
    assert set(deadline_units(DEADLINE)) <= paths
    assert {
        "path": "/etc/orchestrate/deadline",
        "content": "2030-01-01T14:00:00Z\n",
        "permissions": "0644",
    } in doc["write_files"]


def test_rendering_is_deterministic() -> None:
    assert render_user_data(deadline=DEADLINE) == render_user_data(deadline=DEADLINE)


def test_setup_runs_once_with_log_and_exit_code() -> None:
    spec = ImageSpec(name="t", flavour="cpu", packages=("numpy",), setup=("echo extra",))
    script = setup_commands(spec)
    assert "bash /tmp/orchestrate-setup-flavour.sh python3 /opt/orchestrate/venv numpy" in script
    assert script.rstrip().endswith("echo extra")
    doc = yaml.safe_load(render_user_data(deadline=DEADLINE, setup=script))
    assert doc["runcmd"][0] == arm_deadline_command()  # the deadline before the long setup
    assert "setup.exit" in doc["runcmd"][1][2]


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


@pytest.mark.parametrize(
    ("timer_active", "finished", "expected"),
    [(True, False, 0), (False, False, 3), (False, True, 1), (True, True, 0)],
)
def test_deadline_check_tells_armed_not_yet_and_never_apart(
    tmp_path: Path, timer_active: bool, finished: bool, expected: int
) -> None:
    """The readiness check's three answers, with systemctl and cloud-init played by scripts."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(f"#!/bin/sh\nexit {0 if timer_active else 3}\n")
    (bin_dir / "cloud-init").write_text("#!/bin/sh\necho 'status: error'\nexit 1\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    result = tmp_path / "result.json"
    if finished:
        result.write_text("{}")
    check = DEADLINE_CHECK.replace(CLOUD_INIT_RESULT, str(result))
    assert check != DEADLINE_CHECK
    proc = subprocess.run(
        ["bash", "-c", check],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == expected, proc.stderr
    if expected == 1:
        assert "not armed" in proc.stderr and "status: error" in proc.stderr
