"""The two conversations of a tree sync, each on ONE remote command.

``push`` (``put_tree``): the remote side prints its manifest and a stat listing; we ask it to
hash only files whose stat no longer matches the manifest and that could still be equal; we
pipe in deletions; then one tar stream carries the changed files and, last, the new manifest.
``pull`` (``get_tree``): the remote side prints its hashes, then streams a gzip tar of the
files we name. One command means one login-shell start and no round trip per file.

Nothing here catches an exception: channel errors reach ``ssh.py``, which translates them.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, cast

from infra.transport import manifest as mf
from infra.transport.fetch import (
    FetchLimits,
    RejectedFile,
    TreeWriter,
    check_name,
    extract_tar,
)
from infra.transport.ssh_tar import TarStream

# The remote half of a push. It answers on stdout, each answer ending in "\n<mark>\n", and
# reads requests on stdin: "OP <nbytes>\n" plus that many bytes. `read` takes a pipe one byte
# at a time and GNU `head -c` never reads past its count, so requests and payloads interleave.
PUSH = r"""
mkdir -p {d} && cd {d} || exit 1
cat {manifest} 2>/dev/null; printf '\n%s\n' {mark}
find . -type f -printf '%P\0%s\0%T@\0%m\0'; printf '\n%s\n' {mark}
while read -r op n; do
  case "$op" in
    HASH) head -c "$n" | xargs -0 -r sha256sum -z --; printf '\n%s\n' {mark} ;;
    DEL) head -c "$n" | xargs -0 -r rm -f -- ;;
    RMDIR) head -c "$n" | xargs -0 -r rmdir -p --ignore-fail-on-non-empty -- 2>/dev/null ;;
    TAR) exec tar -xpf - --no-same-owner --unlink-first ;;
    TARZ) exec tar -xzpf - --no-same-owner --unlink-first ;;
    *) exit 0 ;;
  esac
done
"""

# The remote half of a pull: hashes, then (on "TAR n") a gzip tar of the NUL-separated names.
PULL = r"""
cd {d} || exit 1
find . -type f -printf '%P\0' | xargs -0 -r sha256sum -z --; printf '\n%s\n' {mark}
read -r op n
[ "$op" = TAR ] || exit 0
head -c "$n" | tar -cf - --null -T - | gzip -1
"""


MAX_ANSWER = 64 << 20  # bytes one answer (a listing, stderr) may take before it is refused


def push_script(remote: str, mark: bytes) -> str:
    """The remote half of ``put_tree`` for directory ``remote``, framed by ``mark``."""
    d = shlex.quote(remote)
    return PUSH.format(d=d, manifest=mf.MANIFEST_NAME, mark=mark.decode())


def pull_script(remote: str, mark: bytes) -> str:
    """The remote half of ``get_tree`` for directory ``remote``, framed by ``mark``."""
    return PULL.format(d=shlex.quote(remote), mark=mark.decode())


def request(op: str, payload: bytes) -> bytes:
    """One request line plus its payload, as ``PUSH``/``PULL`` read them."""
    return f"{op} {len(payload)}\n".encode() + payload


class Channel(Protocol):
    def recv(self, n: int, /) -> bytes: ...

    def recv_exit_status(self) -> int: ...

    def recv_stderr(self, n: int, /) -> bytes: ...


class Conversation:
    """Reads a channel's stdout as answers ending in a marker, then as a plain stream.

    ``read`` makes it a file for ``tarfile``; ``count`` is every stdout byte received.
    """

    def __init__(self, chan: Channel) -> None:
        self._chan = chan
        self._buf = bytearray()
        self._eof = False
        self.count = 0

    def _fill(self) -> bool:
        data = self._chan.recv(1 << 18)
        self.count += len(data)
        self._buf += data
        self._eof = not data
        return bool(data)

    def read_until(self, mark: bytes) -> bytes:
        """The bytes up to ``"\n" + mark + "\n"``; EOFError if the command ended first.

        An answer longer than ``MAX_ANSWER`` is refused: a hostile remote could otherwise
        fill this process's memory with one endless listing.
        """
        end = b"\n" + mark + b"\n"
        while (i := self._buf.find(end)) < 0:
            if len(self._buf) > MAX_ANSWER:
                raise RejectedFile(f"the remote's answer passed {MAX_ANSWER // (1 << 20)} MB")
            if not self._fill():
                raise EOFError("the remote side ended before answering")
        answer = bytes(self._buf[:i])
        del self._buf[: i + len(end)]
        return answer

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes of the remote's reply (all until EOF when ``n`` < 0)."""
        while not self._eof and (n < 0 or len(self._buf) < n):
            self._fill()
        n = len(self._buf) if n < 0 else min(n, len(self._buf))
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def finish(self) -> tuple[int, str]:
        """Drain stdout (discarding it), then return the exit code and stderr (its tail)."""
        while not self._eof:
            self._fill()
            self._buf.clear()
        code = self._chan.recv_exit_status()
        err = bytearray()
        while chunk := self._chan.recv_stderr(1 << 16):
            err += chunk
            del err[: max(0, len(err) - MAX_ANSWER)]
        return code, err.decode(errors="replace")


class SendChannel(Channel, Protocol):
    def sendall(self, data: bytes, /) -> None: ...

    def shutdown_write(self) -> None: ...


@dataclass(frozen=True)
class Pushed:
    plan: mf.PushPlan
    bytes_sent: int
    exit_code: int
    stderr: str


def push(
    chan: SendChannel,
    talk: Conversation,
    local: Path,
    mark: bytes,
    scan: mf.Background,
    *,
    exclude: Sequence[str],
    compress: bool,
) -> Pushed:
    """Hold the push conversation on ``chan`` (running ``push_script``)."""
    old = mf.Manifest.from_json(talk.read_until(mark).decode(errors="replace"))
    listing = {
        rel: st
        for rel, st in mf.parse_find_listing(talk.read_until(mark)).items()
        if rel != mf.MANIFEST_NAME and not mf.is_excluded(rel, exclude)
    }
    mine = scan.result()
    known, unknown = mf.remote_hashes(old, listing)
    # Only files that might still be equal are worth hashing remotely.
    maybe = [r for r in unknown if r in mine.files and mine.files[r].size == listing[r].size]
    if maybe:
        chan.sendall(request("HASH", mf.nul_join(maybe)))
        known.update(mf.parse_sha256sum(talk.read_until(mark)))
    plan = mf.plan_push(mine, old, listing, known)
    if plan.delete:
        parents = {os.path.dirname(r) for r in plan.delete} - {""}
        chan.sendall(request("DEL", mf.nul_join(plan.delete)))
        chan.sendall(request("RMDIR", mf.nul_join(sorted(parents, key=len, reverse=True))))
    sent = 0
    stream: TarStream | None = None
    if plan.send or plan.manifest != old:
        chan.sendall(b"TARZ\n" if compress else b"TAR\n")
        stream = TarStream(local.resolve(), plan.send, plan.manifest, compress=compress)
        for block in stream:
            chan.sendall(block)
            sent += len(block)
    else:
        chan.sendall(b"DONE\n")
    chan.shutdown_write()
    code, err = talk.finish()
    if stream is not None:
        stream.check()
    return Pushed(plan, sent, code, err)


@dataclass(frozen=True)
class Pulled:
    total: int
    fetched: int
    bytes_received: int
    exit_code: int
    stderr: str


def pull(
    chan: SendChannel,
    talk: Conversation,
    local: Path,
    mark: bytes,
    *,
    cache: mf.HashCache,
    limits: FetchLimits | None = None,
    where: str = "the remote",
) -> Pulled:
    """Hold the pull conversation on ``chan`` (running ``pull_script``).

    Raises ``RejectedFile`` (after writing the acceptable members) if the remote sent anything
    ``infra.transport.fetch`` refuses.
    """
    limits = limits or FetchLimits.from_env()
    hashes = mf.parse_sha256sum(talk.read_until(mark))
    theirs = {r: h for r, h in hashes.items() if r != mf.MANIFEST_NAME}
    have = {r: e.sha256 for r, e in mf.scan(local, cache=cache).files.items()}
    want = sorted(r for r, h in theirs.items() if have.get(r) != h)
    before = talk.count
    if want:
        # The remote is untrusted: every member goes through fetch's rules (no links, devices
        # or FIFOs; names inside ``local``; sizes capped; no write through a symlink).
        asked = {"/".join(p) for r in want if not isinstance(p := check_name(r), str)}
        with TreeWriter(local, limits) as writer:
            chan.sendall(request("TAR", mf.nul_join(want)))
            chan.shutdown_write()
            extract_tar(cast(IO[bytes], talk), writer, wanted=asked, where=where)
    else:
        chan.sendall(b"DONE\n")
        chan.shutdown_write()
    code, err = talk.finish()
    return Pulled(len(theirs), len(want), talk.count - before, code, err)
