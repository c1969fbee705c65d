"""The tar stream of a tree sync, built while it is sent.

Why it looks like this:
  * A producer thread reads files and compresses (both release the GIL) while the caller
    encrypts and sends, so a sync keeps two cores busy.
  * On a slow link the stream is gzip (``ssh_sync``'s ``TARZ``): a series of gzip members,
    one per 1 MiB of tar (``gzip -d`` reads concatenated members as one stream), so each
    block picks its own deflate level. Deflate pays only when the bytes it saves take longer
    to send than it takes to compress here and inflate there; the sender's measured rate and
    a timed 16 KiB sample decide, block by block (like ``zstd --adapt``), and a block that
    does not shrink is stored.
  * On a LAN-fast link (the transport decides from the round trip) the stream is plain tar
    (``TAR``): there even stored gzip blocks cost a process and a copy at the far end.
  * Each member carries mode and whole-second mtime: after extraction that is exactly the
    remote stat the new manifest records, so the next sync can trust the manifest after one
    cheap ``find`` listing.
"""

from __future__ import annotations

import queue
import tarfile
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from infra.errors import TransportError
from infra.transport import manifest as mf

BLOCK = 1 << 20  # raw tar bytes per gzip member
_DEPTH = 8  # compressed blocks queued ahead of the sender
_SAMPLE = 16 * 1024  # bytes of a block test-compressed to judge it
_INCOMPRESSIBLE = 0.9  # a sample that keeps more than this fraction is stored, not deflated
_INFLATE_SHARE = 0.35  # inflating on the far side costs about a third of deflating here


def choose_level(block: bytes, send_rate: float | None) -> int:
    """1 when deflating ``block`` saves more sending time than it costs, else 0.

    ``send_rate`` is the link's measured bytes per second (None before the first block: then
    compress, since small syncs are cheap either way and slow links gain the most).
    """
    mid = max(0, len(block) // 2 - _SAMPLE // 2)
    sample = block[mid : mid + _SAMPLE]
    if not sample:
        return 0
    t0 = time.perf_counter()
    kept = len(zlib.compress(sample, 1)) / len(sample)
    cost = (time.perf_counter() - t0) * (len(block) / len(sample)) * (1 + _INFLATE_SHARE)
    if kept > _INCOMPRESSIBLE:
        return 0
    if send_rate is None:
        return 1
    return 1 if cost < (1 - kept) * len(block) / send_rate else 0


def gzip_member(block: bytes, level: int) -> bytes:
    """``block`` as one complete gzip member."""
    z = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: gzip framing
    return z.compress(block) + z.flush()


class TarStream:
    """Iterates the gzip tar of ``rels`` (then the manifest, last) as compressed blocks.

    Args:
        root: the local tree.
        rels: relative paths to send, each described in ``new``.
        new: the manifest to leave remotely; its entries give each member's mode and mtime.
        compress: gzip members (adaptive levels) for ``TARZ``; plain tar blocks for ``TAR``.
    """

    def __init__(
        self, root: Path, rels: Sequence[str], new: mf.Manifest, *, compress: bool = True
    ) -> None:
        self._root, self._rels, self._new = root, rels, new
        self._compress = compress
        self._q: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=_DEPTH)
        self._raw = bytearray()
        self._written = 0
        self._rate: float | None = None  # bytes/s the sender achieves, smoothed
        self._cancel = threading.Event()
        self._error: BaseException | None = None
        self.levels: list[int] = []  # the level each block went out at, for tests and stats

    # -- producer side (tarfile writes here) --

    def tell(self) -> int:
        """Bytes written so far (tarfile asks)."""
        return self._written

    def write(self, data: bytes) -> int:
        """Take bytes from tarfile and send them on; a cancelled stream raises ``OSError``."""
        self._written += len(data)
        if self._cancel.is_set():
            raise OSError("tar stream cancelled")
        self._raw += data
        while len(self._raw) >= BLOCK:
            self._emit(bytes(self._raw[:BLOCK]))
            del self._raw[:BLOCK]
        return len(data)

    def _emit(self, block: bytes) -> None:
        if not self._compress:
            self._put(block)
            return
        level = choose_level(block, self._rate)
        self.levels.append(level)
        self._put(gzip_member(block, level))

    def _put(self, item: bytes | BaseException | None) -> None:
        while not self._cancel.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _produce(self) -> None:
        try:
            # Plain "w" mode writes straight to us; the "w|" stream mode re-buffers in 10 KiB
            # pieces by slicing bytes objects, which cost more CPU than the rest of the sync.
            with tarfile.open(
                fileobj=self,
                mode="w",
                format=tarfile.PAX_FORMAT,
                copybufsize=BLOCK,  # type: ignore[call-overload]
            ) as tar:
                for rel in self._rels:
                    e = self._new.files[rel]
                    info = tarfile.TarInfo(rel)
                    info.size, info.mode, info.mtime = e.size, e.mode, e.mtime_ns // 1_000_000_000
                    with open(self._root / rel, "rb") as f:
                        tar.addfile(info, f)
                body = self._new.to_json().encode()
                info = tarfile.TarInfo(mf.MANIFEST_NAME)
                info.size, info.mode, info.mtime = len(body), 0o644, int(time.time())
                tar.addfile(info, _BytesReader(body))
            if self._raw:
                self._emit(bytes(self._raw))
            self._put(None)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)

    # -- consumer side (the sender iterates) --

    def __iter__(self) -> Iterator[bytes]:
        worker = threading.Thread(target=self._produce, name="put_tree-tar", daemon=True)
        worker.start()
        try:
            while (item := self._q.get()) is not None:
                if isinstance(item, BaseException):
                    self._error = item
                    return
                t0 = time.perf_counter()
                yield item  # the caller sends it before asking for the next
                rate = len(item) / max(time.perf_counter() - t0, 1e-6)
                self._rate = rate if self._rate is None else 0.7 * self._rate + 0.3 * rate
        finally:
            self._cancel.set()
            worker.join(timeout=5)

    def check(self) -> None:
        """Re-raise a local read error from the producer (e.g. a file vanished mid-sync)."""
        if self._error is not None:
            raise TransportError(f"building the tar stream failed: {self._error}") from self._error


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else self._pos + n
        chunk, self._pos = self._data[self._pos : end], min(end, len(self._data))
        return chunk
