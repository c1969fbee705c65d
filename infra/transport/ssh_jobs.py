"""The POSIX ``sh`` scripts that look at and stop a ``jobs.py`` job on a remote machine.

``poll`` runs often, on every host at once, so its script uses shell builtins where it can
(``read`` rather than ``cat``/``sed``): two or three short processes per poll, not ten.

They pair with ``jobs.wrapper_script``: the wrapper leaves ``pid``/``exit_code``/``heartbeat``
in the job directory, and these read them in one short command each, so ``poll`` never blocks
and ``stop`` is one round trip. Both treat zombies as dead: on hosts (and containers) whose
pid 1 does not reap orphans, ``kill -0`` alone would call a finished job alive forever.
"""

from __future__ import annotations

import shlex

from infra.transport.base import JobStatus

_POLL = r"""
j={jd}; log={log}; off={off}
pid=; ec=; alive=0
read -r pid 2>/dev/null <"$j/pid"
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  alive=1
  # pid 1 may not reap orphans: a zombie, or a reused pid outside the job's session, is dead.
  if read -r line 2>/dev/null <"/proc/$pid/stat"; then
    set -- ${{line##*) }}
    if [ "$1" = Z ] || [ "$4" != "$pid" ]; then alive=0; fi
  fi
fi
read -r ec 2>/dev/null <"$j/exit_code"
# One stat for both files while the job runs (both exist), two only when one is missing.
st=$(stat -c '%s %.3Y' "$log" "$j/heartbeat" 2>/dev/null)
case "$st" in
  *"
"*) size=${{st%% *}}; hb=${{st##* }} ;;
  *) size=$(stat -c %s "$log" 2>/dev/null || echo 0)
     hb=$(stat -c %.3Y "$j/heartbeat" 2>/dev/null) ;;
esac
printf '%s %s %s %s %s\n' "$alive" "${{ec:--}}" "${{hb:--}}" "$(date +%s.%N)" "$size"
n=$((size - off))
if [ "$n" -gt {max} ]; then tail -c +$((off + 1)) "$log" | head -c {max}
elif [ "$n" -gt 0 ]; then tail -c +$((off + 1)) "$log"; fi
exit 0
"""

_STOP = r"""
j={jd}
pid=$(cat "$j/pid" 2>/dev/null)
[ -n "$pid" ] || exit 0
alive() {{
  if [ -r /proc/self/stat ]; then
    cat /proc/[0-9]*/stat 2>/dev/null |
      awk -v g="$pid" '{{ sub(/^.*\) /, ""); if ($3 == g && $1 != "Z") n++ }} END {{ exit n == 0 }}'
  else
    kill -0 -"$pid" 2>/dev/null
  fi
}}
alive || exit 0
kill -TERM -"$pid" 2>/dev/null
i=0
while alive && [ "$i" -lt {steps} ]; do sleep 0.1; i=$((i + 1)); done
if alive; then kill -KILL -"$pid" 2>/dev/null; fi
exit 0
"""


def poll_script(job_dir: str, log: str, offset: int, max_bytes: int) -> str:
    """The one ``sh`` script ``poll`` runs: a status line, then raw log bytes from ``offset``."""
    q = shlex.quote
    return _POLL.format(jd=q(job_dir), log=q(log), off=int(offset), max=int(max_bytes))


def stop_script(job_dir: str, grace_s: float) -> str:
    """TERM the job's process group, wait for it (zombies count as gone), then KILL."""
    return _STOP.format(jd=shlex.quote(job_dir), steps=max(1, int(grace_s * 10)))


def split_utf8(data: bytes) -> tuple[str, int]:
    """Decode ``data`` but leave a UTF-8 sequence cut at the end for the next poll."""
    cut = len(data)
    for back in range(1, min(4, len(data)) + 1):
        b = data[-back]
        if b & 0xC0 != 0x80:  # a lead byte (or ASCII): is its sequence complete?
            need = 1 if b < 0x80 else 2 if b >> 5 == 0b110 else 3 if b >> 4 == 0b1110 else 4
            if need > back:
                cut = len(data) - back
            break
    return data[:cut].decode("utf-8", errors="replace"), cut


def wait_for_pid(job_dir: str) -> str:
    """A shell suffix for the launch line: wait (up to 10 s) for the pid file, print it."""
    jd = shlex.quote(job_dir)
    return (
        f"; i=0; while [ ! -s {jd}/pid ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; "
        f"cat {jd}/pid"
    )


def parse_poll(out: bytes, log_offset: int) -> JobStatus:
    """Turn ``poll_script``'s output (status line, then log bytes) into a ``JobStatus``."""
    head, _, chunk = out.partition(b"\n")
    fields = head.decode(errors="replace").split()
    if len(fields) != 5:
        raise ValueError(f"unexpected poll output: {head[:200]!r}")
    alive, exit_code, beat, now, _size = fields
    text, used = split_utf8(chunk)
    return JobStatus(
        running=alive == "1" and exit_code == "-",
        exit_code=None if exit_code == "-" else int(exit_code),
        log_chunk=text,
        log_offset=log_offset + used,
        heartbeat_age_s=None if beat == "-" else max(0.0, float(now) - float(beat)),
    )
