"""Secret refusal in a shipped workdir: by name (any case), by content, through symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.workdir import select_workdir


def refused(root: Path) -> str:
    with pytest.raises(SpecError) as caught:
        select_workdir(root, ship_secrets=[], spec_file="exp.yaml")
    issue = caught.value.issues[0]
    assert (issue.line, issue.column) == (1, 1)
    return issue.message


@pytest.fixture
def root(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    (d / "train.py").write_text("print('hi')\n")
    return d


@pytest.mark.parametrize(
    "name",
    [
        ".ENV",
        ".Env.local",
        "ID_RSA",
        "keys/Id_Ed25519.pub",
        ".git-credentials",
        ".pypirc",
        ".npmrc",
        ".kube/config",
        "service-account.json",
        "my-Service-Account-prod.json",
        "terraform.tfstate",
        "infra/terraform.tfstate.backup",
        "CREDENTIALS",
        "deploy/server.PEM",
    ],
)
def test_secret_names_in_any_case(root: Path, name: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    assert name in refused(root)


@pytest.mark.parametrize(
    "content",
    [
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n",
        "-----BEGIN EC PRIVATE KEY-----\n",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n",
        "[default]\naws_secret_access_key = abc\n",
        "key = 'AKIAIOSFODNN7EXAMPLE'\n",
        '{"type": "service_account", "private_key": "x"}',
        "token: ghp_" + "a" * 36 + "\n",
    ],
)
def test_secret_content_under_a_harmless_name(root: Path, content: str) -> None:
    (root / "notes.txt").write_text(content)
    assert "notes.txt (a private key or credential inside)" in refused(root)


def test_a_link_leaving_the_workdir_is_refused(root: Path, tmp_path: Path) -> None:
    aws = tmp_path / "home" / ".aws"
    aws.mkdir(parents=True)
    (aws / "credentials").write_text("[default]\n")
    (root / "config.ini").symlink_to(aws / "credentials")
    (root / "shared").symlink_to(tmp_path / "home")
    message = refused(root)
    assert "config.ini (a link leaving the workdir" in message
    assert "shared (a link leaving the workdir" in message


def test_a_link_to_a_secret_inside_is_refused(root: Path) -> None:
    (root / ".env").write_text("X=1")
    (root / "settings").symlink_to(root / ".env")
    assert "settings (a link to .env" in refused(root)


def test_ordinary_files_links_and_fifos_are_fine(root: Path) -> None:
    (root / "data").mkdir()
    (root / "data" / "a.csv").write_text("1,2\n")
    (root / "latest.csv").symlink_to(root / "data" / "a.csv")
    os.mkfifo(root / "pipe")  # never opened for reading: plan must not hang
    (root / "big.bin").write_bytes(b"-----BEGIN RSA PRIVATE KEY-----" + bytes(2 << 20))
    sel = select_workdir(root, ship_secrets=[], spec_file="exp.yaml")
    assert {"train.py", "data/a.csv", "latest.csv"} <= set(sel.files)


def test_ship_secrets_lets_a_listed_file_through(root: Path) -> None:
    (root / "ID_RSA").write_text("x")
    sel = select_workdir(root, ship_secrets=["ID_RSA"], spec_file="exp.yaml")
    assert "ID_RSA" in sel.files
