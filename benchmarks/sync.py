"""SSH sync and fan-out, measured against real OpenSSH servers on 127.0.0.1.

Run from the repository root:  .venv/bin/python -m benchmarks.sync [--results PATH]

1. Tree sync, side by side with ``rsync -a --delete`` over the same sshd, on a generated tree of
   2,000 files / ~50 MB (80% text-like, 20% random bytes): first sync (cold: a new connection
   and an empty hash cache for us; rsync always starts cold), no-change re-sync, and one file
   changed. Each figure is the median of ``--reps`` alternating runs.
2. Fan-out: 32 tasks of ``sleep 1`` started with ``start`` and watched with ``poll``, on one
   host then spread over four; efficiency = (T1 / 4) / T4.

Writes a "## SSH sync and fan-out" section into benchmarks/RESULTS.md (replacing only it).
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import queue
import random
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks._results import write_section
from infra.transport import manifest as mf
from infra.transport.ssh import SshTransport
from tests.sshd import SshdServer, keygen, make_server

SECTION = "## SSH sync and fan-out"
FILES, TEXT_SHARE = 2000, 0.8


def make_tree(root: Path, seed: int = 0) -> int:
    """2,000 files in 40 directories, ~25 kB each; returns the total bytes."""
    rng = random.Random(seed)
    words = [f"w{rng.randrange(10**6)}" for _ in range(5000)]
    total = 0
    for i in range(FILES):
        sub = root / f"d{i % 40:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        if i % 5 < TEXT_SHARE * 5:
            data = " ".join(rng.choice(words) for _ in range(3600)).encode()
            (sub / f"f{i:04d}.txt").write_bytes(data)
        else:
            data = rng.randbytes(25_000)
            (sub / f"f{i:04d}.bin").write_bytes(data)
        total += len(data)
    return total


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_sync(server: SshdServer, work: Path, reps: int) -> dict[str, tuple[float, float]]:
    """Median seconds (ours, rsync) per scenario."""
    src = work / "src"
    size = make_tree(src)
    print(f"tree: {FILES} files, {size / 1e6:.1f} MB")
    known = work / "known_hosts"
    known.write_text(f"[{server.host}]:{server.port} {server.host_key}\n")
    ssh = (
        f"ssh -p {server.port} -i {server.key_path} -o UserKnownHostsFile={known} "
        "-o StrictHostKeyChecking=yes -o BatchMode=yes"
    )

    def rsync(dst: Path) -> None:
        cmd = [
            "rsync",
            "-a",
            "--delete",
            "-e",
            ssh,
            f"{src}/",
            f"{server.user}@{server.host}:{dst}/",
        ]
        subprocess.run(cmd, check=True)

    def pair(ours: Callable[[], object], rsync_dst: Path) -> tuple[float, float]:
        theirs = timed(lambda: rsync(rsync_dst))
        return timed(ours), theirs

    times: dict[str, list[tuple[float, float]]] = {"first": [], "no change": [], "one file": []}
    warm = SshTransport(server.address)
    for rep in range(reps):
        ours_dst, rsync_dst = work / f"ours{rep}", work / f"rsync{rep}"

        def ours_first(dst: Path = ours_dst) -> None:
            with SshTransport(server.address, cache=mf.HashCache()) as cold:
                assert cold.put_tree(src, str(dst)).files_sent == FILES

        times["first"].append(pair(ours_first, rsync_dst))
        # Re-syncs use the engine's persistent connection; rsync pays its own start each time.
        # rsync runs first, so ours meets a connection idle for a moment, as between tasks.
        warm.put_tree(src, str(ours_dst))
        resync = functools.partial(warm.put_tree, src, str(ours_dst))
        times["no change"].append(pair(resync, rsync_dst))
        victim = src / "d07" / f"f{7 + 40 * rep:04d}.txt"
        victim.write_bytes(victim.read_bytes()[::-1])
        times["one file"].append(pair(resync, rsync_dst))
        assert (ours_dst / victim.relative_to(src)).read_bytes() == victim.read_bytes()
    probe = SshTransport(server.address)
    connect = timed(lambda: probe.run(["true"]))
    probe.close()
    warm.close()
    print(f"connect + one command: {connect:.2f} s")
    return {
        k: (statistics.median(o for o, _ in v), statistics.median(r for _, r in v))
        for k, v in times.items()
    }


def run_tasks(servers: list[SshdServer], work: Path, tasks: int, poll_s: float) -> float:
    """Seconds to run ``tasks`` x ``sleep 1``, one at a time per host, hosts in parallel."""
    todo: queue.Queue[int] = queue.Queue()
    for i in range(tasks):
        todo.put(i)
    errors: list[BaseException] = []

    def worker(server: SshdServer) -> None:
        try:
            with SshTransport(server.address) as transport:
                transport.run(["true"])
                while True:
                    try:
                        i = todo.get_nowait()
                    except queue.Empty:
                        return
                    log = str(work / f"h{server.port}" / f"task{i}.log")
                    job = transport.start(["sleep", "1"], env={}, log=log)
                    while not (status := transport.poll(job)).finished:
                        time.sleep(poll_s)
                    assert status.exit_code == 0, status
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in servers]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - t0


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    load = os.getloadavg()[0]
    return f"{platform.node()}: {os.cpu_count()} cores ({cpu}), load avg {load:.1f} at start"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between polls")
    parser.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = parser.parse_args()
    if shutil.which("rsync") is None:
        raise SystemExit("rsync is not installed (apt-get install rsync)")
    os.makedirs("/run/sshd", exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    servers: list[SshdServer] = []
    try:
        key = work / "id_ed25519"
        pub = keygen(key)
        for i in range(4):
            servers.append(make_server(work / "fleet", key_path=key, pub=pub, index=i))
            servers[-1].start()
        where = machine()
        print(where)
        sync = bench_sync(servers[0], work / "sync", args.reps)
        t1 = run_tasks(servers[:1], work / "fan1", args.tasks, args.poll)
        t4 = run_tasks(servers, work / "fan4", args.tasks, args.poll)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)
    eff = (t1 / 4) / t4
    rows = [
        f"| {name} | {ours:.2f} | {rs:.2f} | {rs / ours:.2f}x |"
        for name, (ours, rs) in sync.items()
    ]
    body = "\n".join(
        [
            SECTION,
            "",
            f"`python -m benchmarks.sync` on {where}; OpenSSH sshd on 127.0.0.1, "
            f"median of {args.reps} alternating runs.",
            "",
            f"Tree sync of {FILES} files / ~50 MB (80% text-like, 20% random) vs "
            "`rsync -a --delete` over the same sshd (seconds; ratio > 1 means we are faster):",
            "",
            "| scenario | SshTransport.put_tree | rsync -a | rsync / ours |",
            "| --- | ---: | ---: | ---: |",
            *rows,
            "",
            "First sync: a new connection and an empty hash cache (rsync starts cold every time).",
            "Re-syncs: the engine's persistent connection (idle during the rsync run just before, "
            "as between tasks); rsync starts ssh for each run.",
            "",
            f"Fan-out of {args.tasks} x `sleep 1` with start/poll (poll every {args.poll:g} s): "
            f"1 host {t1:.1f} s, 4 hosts {t4:.1f} s, efficiency (T1/4)/T4 = {eff:.0%}.",
        ]
    )
    print(body)
    write_section(body, args.results)


if __name__ == "__main__":
    main()
