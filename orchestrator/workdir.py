"""Which files of a ``workdir`` are shipped: ignore files honoured, secrets refused.

``.gitignore`` and ``.orchestrateignore`` (same syntax) are read with ``pathspec``, the library
pip and black use for gitignore semantics. Files that look like credentials are refused unless
the experiment lists them in ``ship_secrets``: a run must never copy a key to a cloud machine by
accident. "Look like" is by name (case-insensitive), by content (private-key and cloud-credential
markers) and through symlinks (a link leaving the workdir is refused: ``~/.aws/credentials``
behind a harmless name is still a secret).
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

import pathspec

from orchestrator.errors import SpecError, SpecIssue

IGNORE_FILES = (".gitignore", ".orchestrateignore")
ALWAYS_SKIPPED = (".git", "__pycache__", ".venv", ".mypy_cache", ".pytest_cache", ".ruff_cache")
SECRET_PATTERNS = (
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    ".pgpass",
    "credentials",
    ".aws/*",
    ".ssh/*",
    ".docker/config.json",
    ".git-credentials",
    ".pypirc",
    ".npmrc",
    ".boto",
    ".s3cfg",
    ".htpasswd",
    ".kube/*",
    "kubeconfig*",
    "*service-account*.json",
    "*service_account*.json",
    "*.tfstate",
    "*.tfstate.*",
    "*.jks",
    "*.keystore",
)
# Markers of a credential inside a file of any name (checked in the first SCAN_BYTES).
SECRET_CONTENT = re.compile(
    rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    rb"|aws_secret_access_key|(?:AKIA|ASIA)[0-9A-Z]{16}"
    rb'|"type":\s*"service_account"'
    rb"|gh[pousr]_[A-Za-z0-9]{36}|xox[abpr]-[A-Za-z0-9-]{10,}",
    re.IGNORECASE,
)
SCAN_BYTES = 64 * 1024  # credential files are small; ...
SCAN_MAX_SIZE = 1 << 20  # ... so bigger files (data, checkpoints) are not read at plan time


@dataclass(frozen=True)
class WorkdirSelection:
    root: Path
    files: tuple[str, ...]
    exclude: tuple[str, ...]  # patterns for Transport.put_tree: ignored files and directories


def _spec(root: Path) -> pathspec.GitIgnoreSpec:
    lines: list[str] = []
    for name in IGNORE_FILES:
        path = root / name
        if path.is_file():
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def looks_secret(rel: str) -> bool:
    """By name, case-insensitively (``.ENV`` and ``ID_RSA`` are secrets too)."""
    rel = rel.lower()
    name = rel.rsplit("/", 1)[-1]
    return any(
        fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(rel, p) for p in SECRET_PATTERNS
    ) or any(f"/{d}/" in f"/{rel}" for d in (".aws", ".ssh", ".kube", ".gnupg"))


def holds_secret(path: Path) -> bool:
    """By content: a private key or cloud credential marker near the start of the file.

    Only regular files are opened (a FIFO in a workdir must not hang ``plan``)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > SCAN_MAX_SIZE:
            return False
        return SECRET_CONTENT.search(fh.read(SCAN_BYTES)) is not None


def _link_problem(path: Path, root: Path) -> str | None:
    """Why a symlink may not be shipped: its target leaves the workdir (or is a secret)."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None  # dangling or a loop: nothing would be shipped through it
    if not target.is_relative_to(root):
        return f"a link leaving the workdir (to {target})"
    rel = target.relative_to(root).as_posix()
    return f"a link to {rel}, which looks secret" if looks_secret(rel) else None


def select_workdir(root: Path, *, ship_secrets: list[str], spec_file: str) -> WorkdirSelection:
    """The files to ship from ``root``.

    Raises:
        SpecError: the workdir holds secret-looking files that are not ignored and not listed in
            ``ship_secrets`` (nothing is launched).
    """
    root = root.resolve()
    spec = _spec(root)
    files: list[str] = []
    exclude: list[str] = []
    secrets: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        keep_dirs = []
        for d in sorted(dirnames):
            rel = prefix + d
            if d in ALWAYS_SKIPPED or spec.match_file(rel + "/"):
                exclude += [rel, rel + "/*"]
            elif (why := _link_problem(Path(dirpath) / d, root)) and rel not in ship_secrets:
                secrets.append(f"{rel} ({why})")
                exclude += [rel, rel + "/*"]
            else:
                keep_dirs.append(d)
        dirnames[:] = keep_dirs
        for f in sorted(filenames):
            rel = prefix + f
            path = Path(dirpath) / f
            if spec.match_file(rel):
                exclude.append(rel)
                continue
            why = _link_problem(path, root) if path.is_symlink() else None
            if why is None and looks_secret(rel):
                why = "its name"
            if why is None and holds_secret(path):
                why = "a private key or credential inside"
            if why is not None and rel not in ship_secrets:
                secrets.append(f"{rel} ({why})")
                exclude.append(rel)
            else:
                files.append(rel)
    if secrets:
        raise SpecError(
            [
                SpecIssue(
                    spec_file,
                    1,
                    1,
                    "workdir",
                    f"refusing to ship secret-looking file(s) from {root}: "
                    + ", ".join(s if s.isprintable() else ascii(s) for s in secrets),
                    "add them to .orchestrateignore, or list them under ship_secrets: to send them",
                )
            ]
        )
    return WorkdirSelection(root, tuple(files), tuple(exclude))
