"""Writes one ``## section`` of benchmarks/RESULTS.md, leaving the other sections alone."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, load {load:.1f}"


def write_section(section: str, path: Path = RESULTS) -> None:
    """Put ``section`` (text starting with its ``## `` heading) into RESULTS.md: it replaces the
    section of the same heading, up to the next ``## ``, or is appended; others stay as they are."""
    heading = section.splitlines()[0]
    assert heading.startswith("## "), "a section starts with its '## ' heading"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    block = section.strip() + "\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: block + "\n", text)
    else:
        text = text.rstrip() + "\n\n" + block
    path.write_text(text.rstrip() + "\n", encoding="utf-8")
