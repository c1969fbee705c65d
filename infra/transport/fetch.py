"""What a fetch may write here: pulled-back files are untrusted input.

A machine we fetch from may be compromised, or a trainer may leave odd things in its output
directory. So whatever ``get_tree`` writes locally obeys these rules, on every transport:

  1. Only regular files and directories are written. Symlinks, hard links, devices, FIFOs,
     sockets and sparse members are refused.
  2. Every name is relative, has no ``..`` component, no control or escape characters, is valid
     UTF-8 and not over-long, so it stays inside the task's directory and prints harmlessly.
  3. Sizes are capped per file, per fetch and in member count (``FetchLimits``; configurable
     through ``ORCHESTRATE_FETCH_MAX_FILE_MB``, ``..._MAX_TOTAL_MB``, ``..._MAX_FILES``).
  4. Local writes never follow a symlink: directories are opened with ``O_NOFOLLOW`` relative to
     their parent's descriptor, and each file is written to a fresh temporary name
     (``O_EXCL|O_NOFOLLOW``) and renamed over whatever was there (a planted link is replaced,
     never written through).
  5. A refused member is skipped; the others are still written (results are not lost), and the
     fetch then raises ``RejectedFile`` naming what it refused, which fails the task. A stream
     that breaks a size cap or is malformed is abandoned at once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

from infra.errors import TransportError

MB = 1 << 20
_ENV = "ORCHESTRATE_FETCH_"
_MAX_COMPONENT = 255  # bytes per path component: NAME_MAX on Linux
_MAX_PATH = 1024  # bytes per relative name; far beyond any result file we write
_META_MAX = 64 * 1024  # a pax or GNU long-name header larger than this is an attack
_CHUNK = 1 << 20
_SHOWN = 5  # refused names quoted in the error message


class RejectedFile(TransportError):
    """A fetched member broke a rule of ``infra.transport.fetch``; it was not written.

    It fails the task that produced it (exit 1 for the run), not the machine.
    """

    exit_code = 1


@dataclass(frozen=True)
class FetchLimits:
    """Caps on one ``get_tree`` call; defaults fit checkpoints of the bundled trainers easily."""

    max_file_bytes: int = 4096 * MB
    max_total_bytes: int = 16384 * MB
    max_files: int = 100_000

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> FetchLimits:
        """Defaults, overridden by ``ORCHESTRATE_FETCH_MAX_FILE_MB`` / ``_MAX_TOTAL_MB`` /
        ``_MAX_FILES`` (a bad value is ignored rather than failing a fetch at its end)."""
        e = os.environ if env is None else env
        d = cls()

        def num(key: str, default: int, scale: int) -> int:
            try:
                value = int(e.get(_ENV + key, ""))
            except ValueError:
                return default
            return value * scale if value > 0 else default

        return cls(
            max_file_bytes=num("MAX_FILE_MB", d.max_file_bytes, MB),
            max_total_bytes=num("MAX_TOTAL_MB", d.max_total_bytes, MB),
            max_files=num("MAX_FILES", d.max_files, 1),
        )


def shown(name: str) -> str:
    """``name`` quoted for a message: escapes and control characters come out as text."""
    return ascii(name)


def check_name(name: str) -> tuple[str, ...] | str:
    """The path components of a member name, or the reason it is refused (rule 2)."""
    if not name or name.startswith("/"):
        return "an absolute or empty name"
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        return "a name that is not valid UTF-8"
    if len(raw) > _MAX_PATH:
        return f"a name over {_MAX_PATH} bytes"
    if any(ord(c) < 32 or 127 <= ord(c) < 160 or c == "\\" for c in name):
        return "a name with control or escape characters"
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if not parts:
        return "a name that is the directory itself"
    if ".." in parts:
        return "a name leaving the task directory ('..')"
    if any(len(p.encode()) > _MAX_COMPONENT for p in parts):
        return f"a name component over {_MAX_COMPONENT} bytes"
    return parts


def kind(mode: int) -> str:
    """What a non-regular file is, in words, for the refusal message."""
    for test, word in (
        (stat.S_ISLNK, "a symlink"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return word
    return "not a regular file"


class TreeWriter:
    """Writes files under one local directory without ever following a symlink (rule 4).

    Use as a context manager; ``refused`` collects (name, reason) for rule 5.
    """

    def __init__(self, root: os.PathLike[str] | str, limits: FetchLimits) -> None:
        os.makedirs(root, exist_ok=True)
        self._root = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        self.limits = limits
        self.refused: list[tuple[str, str]] = []
        self.files = 0
        self.bytes = 0

    def __enter__(self) -> TreeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._root)

    def refuse(self, name: str, why: str) -> None:
        self.refused.append((name, why))

    def count(self, name: str, size: int) -> None:
        """Account for one more file of ``size`` bytes; raise once a cap is passed (rule 3)."""
        lim = self.limits
        if self.files + 1 > lim.max_files:
            raise RejectedFile(f"refused {shown(name)}: more than {lim.max_files} files")
        if size > lim.max_file_bytes:
            raise RejectedFile(
                f"refused {shown(name)}: {size} bytes is over the per-file cap of "
                f"{lim.max_file_bytes // MB} MB (ORCHESTRATE_FETCH_MAX_FILE_MB)"
            )
        if self.bytes + size > lim.max_total_bytes:
            raise RejectedFile(
                f"refused {shown(name)}: the fetch passes its cap of "
                f"{lim.max_total_bytes // MB} MB (ORCHESTRATE_FETCH_MAX_TOTAL_MB)"
            )
        self.files += 1
        self.bytes += size

    def _dir(self, parts: Iterable[str], name: str) -> int | None:
        """An open descriptor of the directory ``parts`` (made as needed), or None (refused)."""
        fd = os.dup(self._root)
        for part in parts:
            try:
                try:
                    nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except FileNotFoundError:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                    nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    self.refuse(name, f"{part!r} is a symlink or a file here, not a directory")
                    return None
                raise
            os.close(fd)
            fd = nxt
        return fd

    def same(self, parts: tuple[str, ...], src: os.stat_result) -> bool:
        """Whether ``parts`` already is a regular file of ``src``'s size and whole-second mtime
        (what ``write`` leaves), so a repeated fetch copies nothing."""
        try:
            st = os.stat("/".join(parts), dir_fd=self._root, follow_symlinks=False)
        except OSError:
            return False
        return (
            stat.S_ISREG(st.st_mode)
            and st.st_size == src.st_size
            and int(st.st_mtime) == int(src.st_mtime)
        )

    def mkdir(self, name: str, parts: tuple[str, ...]) -> None:
        """Create directory ``name`` under ``parts`` without following a symlink."""
        fd = self._dir(parts, name)
        if fd is not None:
            os.close(fd)

    def write(
        self, name: str, parts: tuple[str, ...], src: IO[bytes], *, size: int, mode: int, mtime: int
    ) -> bool:
        """Write ``size`` bytes of ``src`` to ``parts``; False if refused. Mode loses its
        set-id, sticky and group/other write bits; mtime is kept (whole seconds)."""
        self.count(name, size)
        parent = self._dir(parts[:-1], name)
        if parent is None:
            return False
        tmp = f".{parts[-1][:200]}.{uuid.uuid4().hex[:8]}.part"
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(tmp, flags, 0o600, dir_fd=parent)
            try:
                left = size
                while left > 0:
                    chunk = src.read(min(_CHUNK, left))
                    if not chunk:
                        raise RejectedFile(f"refused {shown(name)}: it ended before its size")
                    os.write(fd, chunk)
                    left -= len(chunk)
                os.fchmod(fd, (mode & 0o755) | 0o600)
                os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)
            try:
                os.rename(tmp, parts[-1], src_dir_fd=parent, dst_dir_fd=parent)
            except IsADirectoryError:
                self.refuse(name, "a directory of that name is here")
                return False
            tmp = ""
            return True
        finally:
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=parent)
            os.close(parent)

    def raise_refused(self, where: str) -> None:
        """Rule 5: after the safe members are written, name what was refused."""
        if not self.refused:
            return
        listed = "; ".join(f"{shown(n)} ({why})" for n, why in self.refused[:_SHOWN])
        more = len(self.refused) - _SHOWN
        tail = f"; and {more} more" if more > 0 else ""
        raise RejectedFile(
            f"refused {len(self.refused)} file(s) fetched from {where}: {listed}{tail}"
        )


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses oversized pax/long-name headers before tarfile reads them into memory."""

    def _proc_member(self, tarfile_: Any) -> Any:  # the documented subclass hook
        if self.type in _META_TYPES and self.size > _META_MAX:
            raise RejectedFile(
                f"refused a {self.size}-byte tar header from the remote (over {_META_MAX})"
            )
        return super()._proc_member(tarfile_)  # type: ignore[misc]


_META_TYPES = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)


def extract_tar(
    stream: IO[bytes], writer: TreeWriter, *, wanted: set[str] | None, where: str
) -> None:
    """Unpack a gzip tar stream through ``writer`` by the module's rules.

    ``wanted`` is the set of names asked for: a regular file not among them is refused too.
    Raises ``RejectedFile`` for a broken cap or a malformed stream (at once) and for refused
    members (after the rest is written).
    """
    try:
        with tarfile.open(fileobj=stream, mode="r|gz", tarinfo=_BoundedTarInfo) as tar:
            for member in tar:
                _extract_one(tar, member, writer, wanted)
    except (tarfile.TarError, EOFError, zlib.error, UnicodeError) as exc:
        # Socket errors are not caught: the transport translates those (connection lost).
        raise RejectedFile(f"the tar stream from {where} is malformed: {exc}") from exc
    writer.raise_refused(where)


def _extract_one(
    tar: tarfile.TarFile, m: tarfile.TarInfo, writer: TreeWriter, wanted: set[str] | None
) -> None:
    parts = check_name(m.name)
    if isinstance(parts, str):
        writer.refuse(m.name, parts)
        return
    rel = "/".join(parts)
    if m.isdir():
        writer.mkdir(m.name, parts)
        return
    if not m.isreg() or m.issparse():
        what = {
            tarfile.SYMTYPE: "a symlink",
            tarfile.LNKTYPE: "a hard link",
            tarfile.CHRTYPE: "a character device",
            tarfile.BLKTYPE: "a block device",
            tarfile.FIFOTYPE: "a FIFO",
        }.get(m.type, "a sparse file" if m.issparse() else "not a regular file")
        writer.refuse(m.name, what)
        return
    if wanted is not None and rel not in wanted:
        writer.refuse(m.name, "a file that was not asked for")
        return
    src = tar.extractfile(m)
    assert src is not None  # a regular member always has a reader
    writer.write(m.name, parts, src, size=m.size, mode=m.mode, mtime=int(m.mtime))


def copy_tree(src: str, writer: TreeWriter, *, where: str) -> tuple[int, int, int]:
    """Copy the regular files under local directory ``src`` through ``writer`` (rules 1-5).

    A file whose size and whole-second mtime match its copy is skipped. Nothing is opened
    before ``lstat`` says it is a regular file, and then only with ``O_NOFOLLOW|O_NONBLOCK``
    (a FIFO swapped in meanwhile cannot hang us). Returns (files seen, copied, bytes copied).
    """
    total = copied = nbytes = 0
    for dirpath, dirnames, filenames in os.walk(src):
        rel_dir = os.path.relpath(dirpath, src)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        keep = []
        for d in sorted(dirnames):
            if d == "__pycache__":
                continue
            st = os.lstat(os.path.join(dirpath, d))
            if stat.S_ISDIR(st.st_mode):
                keep.append(d)
            else:  # os.walk lists a symlink to a directory among the directories
                writer.refuse(prefix + d, kind(st.st_mode))
        dirnames[:] = keep
        for fname in sorted(filenames):
            rel = prefix + fname
            parts = check_name(rel)
            if isinstance(parts, str):
                writer.refuse(rel, parts)
                continue
            path = os.path.join(dirpath, fname)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode):
                writer.refuse(rel, kind(st.st_mode))
                continue
            total += 1
            if writer.same(parts, st):
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError as exc:
                writer.refuse(rel, f"unreadable ({exc.strerror})")
                continue
            with os.fdopen(fd, "rb") as fh:
                now = os.fstat(fh.fileno())
                if not stat.S_ISREG(now.st_mode):
                    writer.refuse(rel, kind(now.st_mode))
                    continue
                mtime = int(now.st_mtime)
                if writer.write(rel, parts, fh, size=now.st_size, mode=now.st_mode, mtime=mtime):
                    copied += 1
                    nbytes += now.st_size
    writer.raise_refused(where)
    return total, copied, nbytes
