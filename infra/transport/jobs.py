"""The shell wrapper that runs a command detached, shared by every transport.

Written by hand because no library does "start detached, survive the connection, leave an exit
code behind" over both a local shell and an SSH channel. The wrapper is a POSIX ``sh`` script so
it runs on any Linux image without our code installed.

Files in the job directory:
  ``pid``        the wrapper's pid, which is also its process-group and session id (``setsid``),
                 so ``kill -- -PID`` reaches the wrapper, the command and anything it spawned;
  ``exit_code``  written atomically when the command ends; absent if the group was killed hard;
  ``heartbeat``  touched every few seconds while the wrapper lives.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

HEARTBEAT_EVERY_S = 2

_WRAPPER = r"""
job={job}
echo $$ > "$job/pid.tmp" && mv "$job/pid.tmp" "$job/pid"
( while kill -0 $$ 2>/dev/null; do touch "$job/heartbeat"; sleep {beat}; done ) &
beat=$!
{cd}
{env}{cmd} >> {log} 2>&1 < /dev/null &
child=$!
trap 'kill -TERM $child 2>/dev/null' TERM INT HUP
wait $child
rc=$?
while kill -0 $child 2>/dev/null; do wait $child; rc=$?; done
kill $beat 2>/dev/null
echo $rc > "$job/exit_code.tmp" && mv "$job/exit_code.tmp" "$job/exit_code"
"""


def wrapper_script(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    job_dir: str,
    log: str,
    cwd: str | None = None,
) -> str:
    """The ``sh`` script body that runs ``argv`` and records pid, heartbeat and exit code."""
    env_part = ""
    if env:
        env_part = "env " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + " "
    cd_part = ""
    if cwd:
        # A missing directory must still leave an exit code and a reason, not a vanished job.
        note = shlex.quote(f"[orchestrate] no such directory: {cwd}")  # cwd may hold a '
        cd_part = (
            f"cd {shlex.quote(cwd)} || {{ echo {note} "
            f'>> {shlex.quote(log)}; echo 97 > "$job/exit_code.tmp"; '
            f'mv "$job/exit_code.tmp" "$job/exit_code"; kill $beat; exit 97; }}'
        )
    return _WRAPPER.format(
        job=shlex.quote(job_dir),
        beat=HEARTBEAT_EVERY_S,
        cd=cd_part,
        env=env_part,
        cmd=shlex.join(argv),
        log=shlex.quote(log),
    )


def launch_command(script: str, *, job_dir: str) -> str:
    """A one-line shell command that starts ``script`` in a new session and returns at once."""
    return (
        f"mkdir -p {shlex.quote(job_dir)} && "
        f"rm -f {shlex.quote(job_dir)}/exit_code {shlex.quote(job_dir)}/pid && "
        f"(setsid sh -c {shlex.quote(script)} > /dev/null 2>&1 < /dev/null &)"
    )
