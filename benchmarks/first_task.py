"""Time to first task and first epoch on an EC2 machine: cold setup vs a baked image, and the
setup's installer (uv, ours) against pip (the reference), on the instance emulator.

Run from the repository root, as root (it boots systemd-nspawn containers; needs the Debian
packages debootstrap and systemd-container):  .venv/bin/python -m benchmarks.first_task

Every machine is a booted container behind moto's EC2 (tests/instances/); package downloads come
from the real PyPI and Debian mirrors, so the figures include this machine's network.

1. Setup alone, ours vs the reference: the spec's real setup script (``cpu.sh``: a venv with
   tensorflow-cpu, pytensor and numba) run as the login user on a fresh machine with empty
   package caches. Ours: uv's binary fetched from PyPI, ``uv venv``, ``uv pip install``, an
   installed-check. The reference, pip as setup ran before: apt's venv module, ``python3 -m
   venv``, ``pip install``, a full import as its check. Alternating, ``--reps`` times each.
2. Launch to first task and first epoch through ``orchestrate run`` (one MNIST task, TensorFlow,
   1 epoch of 2000 samples): from the public image with setup at launch (cold: empty caches),
   then ``orchestrate ami bake``, then from the baked image. "Our own time beyond the boot" is
   machine ready (SSH answers and the deadline is armed) to the task's start.
3. A PyTensor task first, cold, the setup staged (ours: the machine is handed over once
   PyTensor is in, TensorFlow installing meanwhile) against the setup in one piece
   (``ORCHESTRATE_SETUP_STAGES=0``, as before).

Writes a "## Time to first task (instance emulator)" section into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ami.spec import spec_for
from ami.userdata import setup_commands
from benchmarks._results import machine, write_section
from tests.instances.disk import unavailable_reason
from tests.instances.emulator import InstanceEmulator
from tests.sshd import free_port

SECTION = "## Time to first task (instance emulator)"
REGION = "us-east-1"
SPEC = "ubuntu24-cpu"


def child_env(endpoint: str, state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        ORCHESTRATE_STATE_DIR=str(state),
    )
    env.pop("ORCHESTRATE_TRAINERS_SRC", None)
    return env


def time_setup(emulator: InstanceEmulator, image: str, installer: str) -> float:
    """Seconds for the spec's setup on a fresh machine, as the login user would run it."""
    ec2 = emulator.ec2
    iid = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="c6i.xlarge")[
        "Instances"
    ][0]["InstanceId"]
    emulator.wait_for(iid, "booted", timeout_s=60)
    ready = (
        "until [ -e /run/cloud-init/result.json ] && id ubuntu >/dev/null 2>&1; do sleep 1; done"
    )
    emulator.run(iid, ready)
    # The reference is the setup as it ran before uv: apt's venv module, `python3 -m venv`, pip,
    # then a full import of the frameworks as its check (for_image keeps that import).
    reference = installer == "pip"
    script = f"export ORCHESTRATE_INSTALLER={installer}\n" + setup_commands(
        spec_for(SPEC), for_image=reference
    )
    emulator.run(iid, f"cat > /home/ubuntu/setup.sh <<'EOF'\n{script}EOF")
    t0 = time.perf_counter()
    done = emulator.run(
        iid, "su - ubuntu -c 'bash /home/ubuntu/setup.sh' 2>&1 | tail -3", timeout_s=1800
    )
    seconds = time.perf_counter() - t0
    if "setup ok" not in done.stdout:
        raise RuntimeError(f"setup with {installer} failed: {done.stdout[-2000:]}")
    ec2.terminate_instances(InstanceIds=[iid])
    return seconds


def experiment(folder: Path, name: str, framework: str = "tensorflow") -> Path:
    spec = {
        "name": name,
        "provider": "aws",
        "region": REGION,
        "ssh_cidr": "127.0.0.1/32",
        "budget": {"max_usd": 5, "max_hours": 1},
        "machines": {"cpu": {"instance_type": "c6i.xlarge", "ami": SPEC}},
        "jobs": [
            {
                "trainer": "mnist",
                "framework": framework,
                "optimizer": "adam",
                "epochs": 1,
                "subset": 2000,
            }
        ],
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def orchestrate(args: list[str], env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"orchestrate {' '.join(args)}: {(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout


def launch_to_first(
    env: dict[str, str], cwd: Path, name: str, framework: str = "tensorflow"
) -> dict[str, float]:
    """One run; seconds from its start to machine ready, first task start and first epoch."""
    out = orchestrate(["run", str(experiment(cwd, name, framework)), "--json"], env, cwd)
    summary = json.loads(out.splitlines()[-1])
    db = sqlite3.connect(Path(env["ORCHESTRATE_STATE_DIR"]) / "journal.sqlite")
    created, ready = db.execute(
        "SELECT r.created_at, m.acquired_at FROM runs r JOIN machines m ON m.run_id = r.id"
        " WHERE r.id = ?",
        (summary["run_id"],),
    ).fetchone()
    (started,) = db.execute(
        "SELECT MIN(started_at) FROM tasks WHERE run_id = ?", (summary["run_id"],)
    ).fetchone()
    db.close()
    timing = Path(summary["run_dir"]) / f"mnist-{framework}-adam-cpu" / "timing.jsonl"
    rows = [json.loads(line) for line in timing.read_text().splitlines() if line.strip()]
    epoch = next(r["t"] for r in rows if r.get("event") == "epoch")
    return {
        "ready": ready - created,
        "task": started - created,
        "epoch": epoch - created,
        "own": started - ready,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=1, help="setup runs per installer (default 1)")
    ap.add_argument("--results", type=Path, default=None, help="RESULTS.md to update")
    args = ap.parse_args()
    reason = unavailable_reason()
    if reason:
        print(f"cannot run: instance emulator: {reason}", file=sys.stderr)
        return 2
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="first-task-") as tmp:
        work = Path(tmp)
        emulator = InstanceEmulator(endpoint, work / "emulator", region=REGION)
        emulator.package_cache = work / "caches-setup"
        emulator.start()
        try:
            image = emulator.register_public_images()[SPEC]
            setups: dict[str, list[float]] = {"pip": [], "uv": []}
            for rep in range(args.reps):
                for installer in ("pip", "uv") if rep % 2 == 0 else ("uv", "pip"):
                    emulator.package_cache = work / f"caches-{installer}-{rep}"  # cold
                    seconds = time_setup(emulator, image, installer)
                    setups[installer].append(seconds)
                    print(f"setup with {installer}: {seconds:.1f} s", flush=True)

            env = child_env(endpoint, work / "state")
            env["ORCHESTRATE_AWS_ENDPOINTS"] = str(emulator.endpoints_file)
            emulator.package_cache = work / "caches-run"  # cold for the first run
            cold = launch_to_first(env, work, "cold")
            print(f"cold: {cold}", flush=True)
            # A PyTensor task first: staged, the machine is handed over before TensorFlow's
            # wheels are in; the reference runs the whole setup first (empty caches, both).
            staged: dict[str, dict[str, float]] = {}
            for stages in ("0", "1"):
                emulator.package_cache = work / f"caches-stages-{stages}"
                staged[stages] = launch_to_first(
                    {**env, "ORCHESTRATE_SETUP_STAGES": stages}, work, f"pt{stages}", "theano"
                )
                print(f"PyTensor first, stages={stages}: {staged[stages]}", flush=True)
            t0 = time.perf_counter()
            orchestrate(
                ["ami", "bake", SPEC, "--region", REGION, "--ssh-cidr", "127.0.0.1/32"],
                env,
                work,
            )
            bake_s = time.perf_counter() - t0
            baked = launch_to_first(env, work, "baked")
            print(f"baked: {baked}", flush=True)
        finally:
            emulator.close()
            server.stop()

    pip_s, uv_s = statistics.median(setups["pip"]), statistics.median(setups["uv"])

    def runs(installer: str) -> str:
        return ", ".join(f"{s:.1f}" for s in setups[installer])

    lines = [
        SECTION,
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}, by `benchmarks/first_task.py`"
        f" (instance emulator: booted systemd-nspawn machines behind moto; real PyPI and Debian"
        f" downloads, empty package caches for every cold figure).",
        "",
        "| setup of `ubuntu24-cpu` on a fresh machine | seconds | runs |",
        "|---|---:|---:|",
        f"| pip: apt's venv module, venv, pip, import check (reference) | {pip_s:.1f}"
        f" | {runs('pip')} |",
        f"| uv: its binary from PyPI, uv venv, uv pip, installed-check (ours) | {uv_s:.1f}"
        f" | {runs('uv')} |",
        f"| ratio pip / uv | {pip_s / uv_s:.2f}x | |",
        "",
        "| one MNIST task (TF, 1 epoch, 2000 samples) | machine ready | first task | "
        "first epoch | ours beyond the boot |",
        "|---|---:|---:|---:|---:|",
    ]
    rows = (
        ("cold: public image, setup at launch (staged, TF first)", cold),
        ("baked image", baked),
    )
    for label, row in rows:
        lines.append(
            f"| {label} | {row['ready']:.1f} s | {row['task']:.1f} s | {row['epoch']:.1f} s"
            f" | {row['own']:.1f} s |"
        )
    lines += [
        "",
        "| one MNIST task (PyTensor, 1 epoch, 2000 samples), cold | machine ready | first task"
        " | first epoch | ours beyond the boot |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, row in (
        ("setup in one piece, then the task (reference)", staged["0"]),
        ("staged: handed over once PyTensor is in (ours)", staged["1"]),
    ):
        lines.append(
            f"| {label} | {row['ready']:.1f} s | {row['task']:.1f} s | {row['epoch']:.1f} s"
            f" | {row['own']:.1f} s |"
        )
    lines += [
        "",
        f"Baking the image took {bake_s:.0f} s. Seconds count from `orchestrate run`'s start;"
        " 'ours beyond the boot' runs from machine ready (SSH answers, deadline armed) to the"
        " task's start: connect, setup when not baked, code sync, start.",
    ]
    if args.results:
        write_section("\n".join(lines), args.results)
    else:
        write_section("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
