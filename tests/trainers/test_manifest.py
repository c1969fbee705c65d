"""manifest.json: the facts a report needs, written without importing a framework."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainers.manifest import code_revision, cpu_info, gpu_info, tree_sha256, write_manifest


def test_manifest_holds_the_contract_fields(tmp_path: Path) -> None:
    written = write_manifest(
        tmp_path / "out", framework="theano", device_used="cpu", extra={"seed": 3}
    )
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(written, default=str))
    for key in ("host", "os", "python", "cpu", "gpu", "versions", "blas", "code", "command"):
        assert key in on_disk
    assert on_disk["framework"] == "theano" and on_disk["device_used"] == "cpu"
    assert on_disk["seed"] == 3
    assert on_disk["versions"]["numpy"] == np.__version__
    assert on_disk["command"] == sys.argv
    assert on_disk["started_at"].endswith("+00:00")
    assert len(on_disk["code"]["content_sha256"]) == 64
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_cpu_model_and_cores_from_proc() -> None:
    info = cpu_info()
    assert info["logical_cores"] >= 1
    if Path("/proc/cpuinfo").exists():
        assert info["model"]


def test_gpu_is_none_without_nvidia_smi() -> None:
    import shutil

    if shutil.which("nvidia-smi") is None:
        assert gpu_info() is None
    else:
        info = gpu_info()
        assert info is not None and info["count"] >= 1


def test_writing_a_manifest_does_not_import_tensorflow(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from trainers.manifest import write_manifest; "
        f"m = write_manifest(Path({str(tmp_path)!r}), framework='tensorflow', device_used='cpu'); "
        "assert 'tensorflow' not in sys.modules and 'pytensor' not in sys.modules; "
        "print(m['versions'].get('tensorflow-cpu') or m['versions'].get('tensorflow'))"
    )
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() != ""


def test_code_revision_outside_git_falls_back_to_content_hash(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    rev = code_revision(tmp_path)
    assert rev["git_commit"] is None and rev["git_dirty"] is None
    assert rev["content_sha256"] == tree_sha256(tmp_path)
    before = rev["content_sha256"]
    (tmp_path / "a.py").write_text("x = 2\n")
    assert tree_sha256(tmp_path) != before


def test_code_revision_inside_git(tmp_path: Path) -> None:
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "a.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "a.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    rev = code_revision(tmp_path)
    assert rev["git_commit"] == head.strip() and rev["git_dirty"] is False
    (tmp_path / "a.py").write_text("x = 2\n")
    assert code_revision(tmp_path)["git_dirty"] is True


def test_a_shipped_copy_takes_the_commit_the_orchestrator_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    monkeypatch.setenv("ORCHESTRATE_GIT_COMMIT", "0123abc")
    monkeypatch.setenv("ORCHESTRATE_GIT_DIRTY", "0")
    rev = code_revision(tmp_path)  # no .git here, as on a machine the code was shipped to
    assert rev["git_commit"] == "0123abc" and rev["git_dirty"] is False
