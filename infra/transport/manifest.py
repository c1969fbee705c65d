"""Content-hash manifests: what a tree holds, so a sync sends only what changed.

A manifest maps each regular file's POSIX relative path to its sha256, size, permission bits and
mtime. Both ends of a sync compare manifests instead of file contents. The remote
copy (``MANIFEST_NAME`` at the tree's root) records the *remote* size/mode/mtime of every file it
lists, so one cheap ``find -printf`` listing tells whether the remote tree still matches it
(rsync's size+mtime "quick check", done on the far side, but to the nanosecond: a file rewritten
within the second it was synced still shows); only files whose stat no longer matches need
hashing there.

Hashing locally goes through a ``HashCache`` keyed by (size, mtime_ns, inode), so re-syncing an
unchanged tree reads no file contents.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass
from fnmatch import fnmatchcase
from pathlib import Path

MANIFEST_NAME = ".orchestrate-manifest.json"
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One file: its content hash and the stat fields the quick check compares."""

    sha256: str
    size: int
    mode: int  # permission bits only (``st_mode & 0o7777``)
    mtime_ns: int  # locally whole seconds (what tar restores); remotely as listed, to the ns


@dataclass(frozen=True)
class Manifest:
    """A tree's files by relative POSIX path."""

    files: Mapping[str, Entry]

    def to_json(self) -> str:
        """The manifest as written beside a synced tree (compact, sorted)."""
        body = {p: [e.sha256, e.size, e.mode, e.mtime_ns] for p, e in sorted(self.files.items())}
        return json.dumps({"version": 1, "files": body}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Manifest | None:
        """Parse a manifest; ``None`` when it is absent, truncated or of another version."""
        try:
            data = json.loads(text)
            if data.get("version") != 1:
                return None
            return cls(
                {
                    p: Entry(str(v[0]), int(v[1]), int(v[2]), int(v[3]))
                    for p, v in data["files"].items()
                }
            )
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return None

    @property
    def total_bytes(self) -> int:
        """Bytes in every file listed (what a first sync sends)."""
        return sum(e.size for e in self.files.values())


@dataclass(frozen=True)
class RemoteStat:
    """What ``find -printf '%P\\0%s\\0%T@\\0%m\\0'`` says about one remote file."""

    size: int
    mtime_ns: int
    mode: int


def is_excluded(rel: str, patterns: Sequence[str]) -> bool:
    """Whether ``rel`` (a POSIX relative path) matches an exclude pattern.

    A pattern matches the whole relative path or any single component of it, so ``"*.pyc"``,
    ``"__pycache__"``, ``".git"`` and ``"runs/*"`` all do what they look like; a trailing ``/``
    is ignored.
    """
    if not patterns:
        return False
    parts = rel.split("/")
    for raw in patterns:
        pat = raw.rstrip("/")
        if fnmatchcase(rel, pat) or any(fnmatchcase(part, pat) for part in parts):
            return True
        # "a/b" also excludes everything under a/b.
        if "/" in pat and any(fnmatchcase("/".join(parts[:i]), pat) for i in range(1, len(parts))):
            return True
    return False


def sha256_file(path: Path) -> str:
    """The file's sha256 in hex, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_READ_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class HashCache:
    """Remembers file hashes by (path, size, mtime_ns, inode), so unchanged files are not re-read.

    Thread-safe: the engine syncs one local tree to several hosts at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, tuple[int, int, int, str]] = {}

    def sha256(self, path: Path, st: os.stat_result) -> str:
        """The file's sha256, recomputed only when its size, mtime or inode changed."""
        key = str(path)
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        with self._lock:
            hit = self._known.get(key)
        if hit is not None and hit[:3] == stamp:
            return hit[3]
        digest = sha256_file(path)
        with self._lock:
            self._known[key] = (*stamp, digest)
        return digest


#: Shared by every transport in this process; keyed by absolute path, so trees never collide.
DEFAULT_CACHE = HashCache()


def scan(root: Path, *, exclude: Sequence[str] = (), cache: HashCache | None = None) -> Manifest:
    """Hash every regular file under ``root`` (symlinks to files are followed; dirs are not).

    The manifest file itself and anything matching ``exclude`` are left out. A missing root is
    an empty tree.
    """
    cache = cache or DEFAULT_CACHE
    files: dict[str, Entry] = {}
    if not root.is_dir():
        return Manifest(files)
    base = root.resolve()
    for dirpath, dirnames, filenames in os.walk(base):
        rel_dir = os.path.relpath(dirpath, base)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        # Prune excluded directories in place so os.walk never descends into them.
        dirnames[:] = sorted(d for d in dirnames if not is_excluded(prefix + d, exclude))
        for name in sorted(filenames):
            rel = prefix + name
            if rel == MANIFEST_NAME or is_excluded(rel, exclude):
                continue
            path = Path(dirpath) / name
            try:
                st = path.stat()
            except FileNotFoundError:  # dangling symlink or deleted while walking
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            files[rel] = Entry(
                sha256=cache.sha256(path, st),
                size=st.st_size,
                mode=stat.S_IMODE(st.st_mode),
                mtime_ns=int(st.st_mtime) * 1_000_000_000,
            )
    return Manifest(files)


def parse_find_listing(raw: bytes) -> dict[str, RemoteStat]:
    """Parse NUL-separated ``%P %s %T@ %m`` quadruples from GNU ``find -printf``."""
    fields = raw.split(b"\0")
    out: dict[str, RemoteStat] = {}
    for i in range(0, len(fields) - 3, 4):
        rel = fields[i].decode("utf-8", "surrogateescape")
        out[rel] = RemoteStat(
            size=int(fields[i + 1]),
            mtime_ns=_ns(fields[i + 2]),
            mode=int(fields[i + 3], 8),
        )
    return out


def _ns(stamp: bytes) -> int:
    """``%T@`` ("1700000000.1234567890") as integer nanoseconds, without float rounding."""
    whole, _, frac = stamp.decode().partition(".")
    return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])


def parse_sha256sum(raw: bytes) -> dict[str, str]:
    """Parse ``sha256sum -z`` output (``HASH  NAME\\0`` records) into path -> hash."""
    out: dict[str, str] = {}
    for record in raw.split(b"\0"):
        if len(record) > 66 and record[64:66] in (b"  ", b" *"):
            out[record[66:].decode("utf-8", "surrogateescape")] = record[:64].decode()
    return out


def remote_hashes(
    manifest: Manifest | None, listing: Mapping[str, RemoteStat]
) -> tuple[dict[str, str], list[str]]:
    """Split the remote files into those the manifest vouches for and those to hash again.

    Returns ``(known, unknown)``: ``known`` maps a path to the hash the manifest recorded when
    its size, mtime and mode still match the listing; ``unknown`` lists the rest.
    """
    known: dict[str, str] = {}
    unknown: list[str] = []
    recorded = manifest.files if manifest is not None else {}
    for rel, st in listing.items():
        entry = recorded.get(rel)
        if entry is not None and (entry.size, entry.mtime_ns, entry.mode) == astuple(st):
            known[rel] = entry.sha256
        else:
            unknown.append(rel)
    return known, unknown


@dataclass(frozen=True)
class PushPlan:
    """What a push does: files to send, remote files to delete, the manifest to leave behind."""

    send: tuple[str, ...]
    delete: tuple[str, ...]
    manifest: Manifest


def plan_push(
    mine: Manifest,
    old: Manifest | None,
    listing: Mapping[str, RemoteStat],
    remote_sha: Mapping[str, str],
) -> PushPlan:
    """Decide a push from the local manifest, the remote listing and the remote hashes known.

    A file is sent when it is missing remotely, its remote hash is unknown or differs, or its
    permission bits differ. The new manifest records the remote mtime of files left alone and
    the sent mtime (which tar restores) of files sent, so it matches the remote stat afterwards.
    """
    send = tuple(
        sorted(
            rel
            for rel, e in mine.files.items()
            if rel not in listing or remote_sha.get(rel) != e.sha256 or listing[rel].mode != e.mode
        )
    )
    sending = set(send)
    files = {
        rel: e if rel in sending else Entry(e.sha256, e.size, e.mode, listing[rel].mtime_ns)
        for rel, e in mine.files.items()
    }
    delete = tuple(sorted(rel for rel in listing if rel not in mine.files))
    return PushPlan(send, delete, Manifest(files))


def nul_join(paths: Iterable[str]) -> bytes:
    """Paths as a NUL-separated byte list, for ``xargs -0`` and ``tar --null -T -``."""
    return b"".join(p.encode("utf-8", "surrogateescape") + b"\0" for p in paths)


class Background:
    """Runs one function in a thread; ``result()`` joins it and re-raises what it raised."""

    def __init__(self, fn: Callable[[], Manifest]) -> None:
        self._fn = fn
        self._value: Manifest | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="manifest-scan", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # re-raised in the caller's thread
            self._error = exc

    def result(self) -> Manifest:
        """Wait for the scan and return its manifest (or raise what it raised)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value
