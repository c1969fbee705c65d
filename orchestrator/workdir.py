"""Which files of a ``workdir`` are shipped: ignore files honoured, secrets refused.

``.gitignore`` and ``.orchestrateignore`` (same syntax) are read with ``pathspec``, the library
pip and black use for gitignore semantics. Files that look like credentials are refused unless
the experiment lists them in ``ship_secrets``: a run must never copy a key to a cloud machine by
accident.
"""

from __future__ import annotations

import fnmatch
import os
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
)


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
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(rel, p) for p in SECRET_PATTERNS) or (
        "/.aws/" in f"/{rel}" or "/.ssh/" in f"/{rel}"
    )


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
            else:
                keep_dirs.append(d)
        dirnames[:] = keep_dirs
        for f in sorted(filenames):
            rel = prefix + f
            if spec.match_file(rel):
                exclude.append(rel)
            elif looks_secret(rel) and rel not in ship_secrets:
                secrets.append(rel)
                exclude.append(rel)
            else:
                files.append(rel)
    if secrets:
        raise SpecError(
            [
                SpecIssue(
                    spec_file,
                    0,
                    0,
                    "workdir",
                    f"refusing to ship secret-looking file(s) from {root}: {', '.join(secrets)}",
                    "add them to .orchestrateignore, or list them under ship_secrets: to send them",
                )
            ]
        )
    return WorkdirSelection(root, tuple(files), tuple(exclude))
