"""report.html in a real browser (headless Debian Chromium): the figures decode and show."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.report import build_report
from orchestrator.report.render import write_outputs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Test-only: after load, write each image's decoded width into the DOM for --dump-dom to show.
PROBE = (
    "<script>window.addEventListener('load', () => document.querySelectorAll('img')"
    ".forEach(i => i.setAttribute('data-natural-width', i.naturalWidth)));</script>"
)


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_html_renders_in_chromium(mnist_dir: Path, pca_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    report = build_report(mnist_dir, plots_dir=out, compare_dir=None)
    write_outputs(report, out, html=True)
    html = out / "report.html"

    probe = out / "probe.html"
    probe.write_text(html.read_text().replace("</body>", PROBE + "</body>"))
    dom = _chromium(
        ["--virtual-time-budget=5000", "--dump-dom", probe.as_uri()], tmp_path / "profile1"
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    widths = re.findall(r'<img[^>]*data-natural-width="(\d+)"', dom.stdout)
    srcs = re.findall(r'<img[^>]*src="data:image/png;base64,', dom.stdout)
    assert len(srcs) == len(report.plots) == 3
    assert widths == ["800"] * 3  # every PNG decoded at its 800 px width

    shot = tmp_path / "report.png"
    res = _chromium(
        [f"--screenshot={shot}", "--window-size=1200,2000", html.as_uri()], tmp_path / "profile2"
    )
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (1200, 2000)
        colours = img.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 200  # text, tables and plots, not a blank page
    evidence = os.environ.get("ORCHESTRATE_EVIDENCE_DIR")
    if evidence:
        Path(evidence).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(evidence) / "report.png")
