"""Run any command and record what the engine needs without the command's cooperation.

``python -m trainers.measure --out DIR -- CMD ...`` runs CMD, forwards signals to it, and
writes ``DIR/process.json``: start and end time, wall seconds, exit code (or the signal that
ended it) and the peak resident memory of the largest process in its tree. A command that does
not write ``manifest.json`` gets a minimal one with the task's parameters
(``$ORCHESTRATE_PARAMS``). Standard library only: it runs before any framework is imported.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sys
import time
from pathlib import Path
from types import FrameType


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args or args[:1] != ["--out"] or len(args) < 4:
        print("usage: python -m trainers.measure --out DIR -- CMD [ARGS...]", file=sys.stderr)
        return 2
    out = Path(args[1])
    command = args[args.index("--") + 1 :]
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    t0 = time.monotonic()
    # posix_spawn rather than subprocess: this wrapper runs for every task, so its own start-up
    # is engine overhead (subprocess's import alone costs ~10 ms).
    pid = os.posix_spawnp(command[0], command, dict(os.environ))

    def forward(signum: int, frame: FrameType | None) -> None:
        # The group usually gets the signal too; forwarding covers a kill of this pid alone.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    exit_code = code if code >= 0 else 128 - code
    record: dict[str, object] = {
        "start": start,
        "end": time.time(),
        "wall_s": time.monotonic() - t0,
        "exit_code": exit_code,
        "signal": signal.Signals(-code).name if code < 0 else None,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports kilobytes
        "user_s": usage.ru_utime,
        "system_s": usage.ru_stime,
        "command": command,
    }
    (out / "process.json").write_text(json.dumps(record, indent=2))
    manifest = out / "manifest.json"
    if not manifest.exists():
        params = json.loads(os.environ.get("ORCHESTRATE_PARAMS", "{}") or "{}")
        manifest.write_text(
            json.dumps(
                {
                    "host": os.uname().nodename,
                    "os": f"{os.uname().sysname} {os.uname().release}",
                    "python": sys.version.split()[0],
                    "command": command,
                    "params": params,
                    "task": os.environ.get("ORCHESTRATE_TASK"),
                    "run": os.environ.get("ORCHESTRATE_RUN"),
                    "device_used": "gpu" if os.environ.get("CUDA_VISIBLE_DEVICES") else "cpu",
                    "written_by": "trainers.measure (the command wrote no manifest)",
                },
                indent=2,
            )
        )
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
