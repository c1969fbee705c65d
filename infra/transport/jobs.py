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

import re
import shlex
from collections.abc import Mapping, Sequence

HEARTBEAT_EVERY_S = 2

# Each external program the wrapper runs (mv, touch, env, mkdir) is a fork and exec, about 1 ms
# on a small machine, and a task's start waits for them: builtins are used where they do the
# job (``: >`` for a first heartbeat, shell assignments for the environment), issue 18.
_WRAPPER = r"""
job={job}
echo $$ > "$job/pid.tmp" && mv "$job/pid.tmp" "$job/pid"
: > "$job/heartbeat"
( while sleep {beat} && kill -0 $$ 2>/dev/null; do touch "$job/heartbeat"; done ) &
beat=$!
{prelude}
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


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
PRELUDE_FAILED = 96  # the exit code of a job whose prelude failed
NO_WORKDIR = 97  # ... and of one whose working directory is missing


def wrapper_script(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    job_dir: str,
    log: str,
    cwd: str | None = None,
    prelude: str = "",
) -> str:
    """The ``sh`` script body that runs ``argv`` and records pid, heartbeat and exit code.

    ``prelude``: shell text run first (output to the log); if it fails, the job ends with
    ``PRELUDE_FAILED`` and a line saying so. It saves the caller a separate command (one
    process start here, a round trip over SSH) for what must happen just before the job.
    """
    env_part = ""
    if env and all(_NAME.match(k) for k in env):
        env_part = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " "
    elif env:  # a name the shell cannot assign: env(1) takes any
        env_part = "env " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + " "
    qlog = shlex.quote(log)
    prelude_part = ""
    if prelude:
        note = shlex.quote("[orchestrate] the job's prelude failed")
        prelude_part = (
            f"{{ {prelude}\n}} >> {qlog} 2>&1 < /dev/null || "
            f"{{ echo {note} >> {qlog}; {_give_up(PRELUDE_FAILED)} }}"
        )
    cd_part = ""
    if cwd:
        # A missing directory must still leave an exit code and a reason, not a vanished job.
        note = shlex.quote(f"[orchestrate] no such directory: {cwd}")  # cwd may hold a '
        cd_part = f"cd {shlex.quote(cwd)} || {{ echo {note} >> {qlog}; {_give_up(NO_WORKDIR)} }}"
    return _WRAPPER.format(
        job=shlex.quote(job_dir),
        beat=HEARTBEAT_EVERY_S,
        prelude=prelude_part,
        cd=cd_part,
        env=env_part,
        cmd=shlex.join(argv),
        log=qlog,
    )


def _give_up(code: int) -> str:
    """End the wrapper before its command with ``code``, left like a command's exit code."""
    return (
        f'echo {code} > "$job/exit_code.tmp"; mv "$job/exit_code.tmp" "$job/exit_code"; '
        f"kill $beat; exit {code};"
    )


def launch_command(script: str, *, job_dir: str) -> str:
    """A one-line shell command that starts ``script`` in a new session and returns at once."""
    return (
        f"mkdir -p {shlex.quote(job_dir)} && "
        f"rm -f {shlex.quote(job_dir)}/exit_code {shlex.quote(job_dir)}/pid && "
        f"(setsid sh -c {shlex.quote(script)} > /dev/null 2>&1 < /dev/null &)"
    )
