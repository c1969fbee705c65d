"""A hostile SSH host: an sshd forced command that answers fetches with a crafted tar stream.

``authorized_keys`` runs this file for every channel (``command="python hostile_remote.py DIR"``).
Anything but a fetch runs as usual, so connecting, syncing and starting jobs work; a fetch
(``ssh_sync.PULL``, recognised in the script the spare shell is sent) gets the bytes the test
left in ``DIR``: ``hashes`` (the ``sha256sum -z`` listing to claim) and ``tar`` (the stream). The
fixture ``hostile_host`` in ``tests/integration/test_hostile_remote.py`` sets it up.

Stdlib only: sshd runs it with whatever interpreter path the test wrote.
"""

from __future__ import annotations

import os
import re
import sys


def _read_exact(n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = os.read(0, n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def _read_line() -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        c = os.read(0, 1)  # one byte at a time: the rest of stdin belongs to the script
        if not c:
            sys.exit(0)
        line += c
    return line


def main(payload: str) -> None:
    original = os.environ.get("SSH_ORIGINAL_COMMAND", "")
    if "read -r n" not in original:  # not a spare shell: control shell, round-trip probe...
        os.execvp("sh", ["sh", "-c", original])
    script = _read_exact(int(_read_line())).decode()
    mark = re.search(r"printf '\\n%s\\n' ([0-9a-f]+)", script)
    if mark is None or "read -r op n" not in script or "tar -cf -" not in script:
        os.execvp("sh", ["sh", "-c", script])  # not a fetch: behave
    out = sys.stdout.buffer
    with open(os.path.join(payload, "hashes"), "rb") as fh:
        out.write(fh.read())
    out.write(b"\n" + mark.group(1).encode() + b"\n")
    out.flush()
    op, _, n = _read_line().decode().strip().partition(" ")
    if op == "TAR":
        _read_exact(int(n))
        with open(os.path.join(payload, "tar"), "rb") as fh:
            while chunk := fh.read(1 << 20):
                out.write(chunk)
    out.flush()


if __name__ == "__main__":
    main(sys.argv[1])
