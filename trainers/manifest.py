"""``manifest.json``: what a trainer ran on, so a number in a report can be traced to a machine.

Standard library and NumPy only, and nothing here imports a framework: versions come from
``importlib.metadata`` (installed distributions), so writing the manifest never pays
TensorFlow's import time nor changes which device it picks. Every probe degrades to ``None``
(no ``/proc``, no ``nvidia-smi``, no git) rather than failing the run.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

# Distributions whose versions matter to a timing; tensorflow-cpu is how TF is installed here.
FRAMEWORK_DISTS = (
    "numpy",
    "tensorflow",
    "tensorflow-cpu",
    "pytensor",
    "numba",
    "jax",
    "jaxlib",
    "scikit-learn",
)
TRAINERS_DIR = Path(__file__).resolve().parent


def write_manifest(
    out_dir: Path,
    *,
    framework: str,
    device_used: str,
    extra: dict[str, Any] | None = None,
    started_at: float | None = None,
) -> dict[str, Any]:
    """Collect the machine facts and write ``out_dir/manifest.json``.

    Args:
        out_dir: the trainer's ``--out`` folder (created if missing).
        framework: ``tensorflow`` or ``theano`` (or a user script's own name).
        device_used: the device the trainer actually ran on (``cpu``, ``gpu:0 (NVIDIA …)``).
        extra: trainer-specific fields (hyper-parameters, data source); they win on a clash.
        started_at: unix time the run started (default: now).

    Returns:
        The dict that was written.
    """
    start = time.time() if started_at is None else started_at
    manifest: dict[str, Any] = {
        "host": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "cpu": cpu_info(),
        "memory_total_bytes": _mem_total(),
        "gpu": gpu_info(),
        "framework": framework,
        "device_used": device_used,
        "versions": framework_versions(),
        "blas": blas_info(),
        "code": code_revision(),
        "command": list(sys.argv),
        "cwd": os.getcwd(),
        "started_at": datetime.fromtimestamp(start, UTC).isoformat(),
        "started_at_unix": start,
    }
    manifest.update(extra or {})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, out / "manifest.json")
    return manifest


def cpu_info() -> dict[str, Any]:
    """CPU model, logical / physical core counts and the cores this process may use."""
    model: str | None = None
    physical: set[tuple[str, str]] = set()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    phys_id = "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and model is None:
            model = value
        elif key == "physical id":
            phys_id = value
        elif key == "core id":
            physical.add((phys_id, value))
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    return {
        "model": model or platform.processor() or None,
        "logical_cores": os.cpu_count(),
        "physical_cores": len(physical) or None,
        "usable_cores": usable,
        "machine": platform.machine(),
    }


def gpu_info() -> dict[str, Any] | None:
    """GPUs as ``nvidia-smi`` reports them; ``None`` where there is no NVIDIA driver."""
    try:
        proc = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,driver_version,memory.total",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=15,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    gpus = []
    for line in proc.stdout.strip().splitlines():
        name, driver, mem = ([*(part.strip() for part in line.split(",")), "", ""])[:3]
        gpus.append({"name": name, "driver": driver, "memory_mib": _int_or_none(mem)})
    if not gpus:
        return None
    return {"model": gpus[0]["name"], "driver": gpus[0]["driver"], "count": len(gpus), "all": gpus}


def framework_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that decide the speed, without importing them."""
    versions: dict[str, str | None] = {}
    for dist in FRAMEWORK_DISTS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def blas_info() -> dict[str, Any] | None:
    """The BLAS/LAPACK NumPy was built against (its ``show_config`` as a dict)."""
    try:
        config: Any = np.show_config(mode="dicts")  # type: ignore[call-arg]
    except (TypeError, ValueError):  # NumPy < 1.25 has no mode=
        return None
    deps: dict[str, Any] = (config or {}).get("Build Dependencies", {})
    out: dict[str, Any] = {}
    for key in ("blas", "lapack"):
        entry: dict[str, Any] = deps.get(key) or {}
        out[key] = {
            "name": entry.get("name"),
            "version": entry.get("version"),
            "config": entry.get("openblas configuration"),
        }
    # Thread-count variables change BLAS speed more than the library does; record them.
    threads = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    out["thread_env"] = {k: os.environ.get(k) for k in threads}
    return out


COMMIT_ENV = "ORCHESTRATE_GIT_COMMIT"  # set by the orchestrator for shipped copies
DIRTY_ENV = "ORCHESTRATE_GIT_DIRTY"  # "1" modified, "0" clean


def code_revision(root: Path = TRAINERS_DIR) -> dict[str, Any]:
    """The trainer code's git commit (and whether it is modified), plus a content hash.

    The content hash is always there: a trainer shipped to a machine without ``.git`` is still
    identified, and two runs with the same hash ran the same code.
    """
    commit: str | None = None
    dirty: bool | None = None
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if proc.returncode == 0:
            commit = proc.stdout.strip()
            status = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--", "."],
                capture_output=True,
                text=True,
                timeout=10,
            )
            dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    if commit is None and os.environ.get(COMMIT_ENV):
        # A shipped copy has no .git: the orchestrator read the commit where the code came from.
        commit = os.environ[COMMIT_ENV]
        dirty = {"1": True, "0": False}.get(os.environ.get(DIRTY_ENV, ""))
    return {"git_commit": commit, "git_dirty": dirty, "content_sha256": tree_sha256(root)}


def tree_sha256(root: Path) -> str:
    """sha256 over the relative paths and bytes of every ``*.py`` file under ``root``."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def _mem_total() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _int_or_none(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:
        return None
