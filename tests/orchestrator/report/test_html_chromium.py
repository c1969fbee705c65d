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
# Test-only: after load, write what the browser laid out into the DOM for --dump-dom to show:
# each image's decoded and drawn width, the page's scroll width and the window's width.
PROBE = (
    "<script>window.addEventListener('load', () => {"
    "document.querySelectorAll('img').forEach(i => {"
    "i.setAttribute('data-natural-width', i.naturalWidth);"
    "i.setAttribute('data-client-width', i.clientWidth);});"
    "const b = document.body;"
    "b.setAttribute('data-scroll-width', document.documentElement.scrollWidth);"
    "b.setAttribute('data-inner-width', window.innerWidth);"
    "b.setAttribute('data-content-width', b.clientWidth);});</script>"
)


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _attr(dom: str, name: str) -> list[int]:
    return [int(v) for v in re.findall(rf'{name}="(\d+)"', dom)]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
@pytest.mark.parametrize("width", [1400, 800])
def test_report_html_renders_in_chromium(mnist_dir: Path, tmp_path: Path, width: int) -> None:
    """At 1400 and 800 px: figures decode and use the page's width, the page never scrolls
    sideways (wide tables scroll in their own box), and the contents list links everything."""
    out = tmp_path / "report"
    report = build_report(mnist_dir, plots_dir=out, compare_dir=None)
    write_outputs(report, out, html=True)
    html = out / "report.html"

    probe = out / "probe.html"
    probe.write_text(html.read_text().replace("</body>", PROBE + "</body>"))
    dom = _chromium(
        ["--virtual-time-budget=5000", f"--window-size={width},1000", "--dump-dom", probe.as_uri()],
        tmp_path / "profile1",
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    srcs = re.findall(r'<img[^>]*src="data:image/png;base64,', dom.stdout)
    assert len(srcs) == len(report.plots) == 3
    assert _attr(dom.stdout, "data-natural-width") == [1440] * 3  # every PNG decoded
    (content,) = _attr(dom.stdout, "data-content-width")
    assert all(w >= 0.9 * content for w in _attr(dom.stdout, "data-client-width"))
    (scroll,) = _attr(dom.stdout, "data-scroll-width")
    (inner,) = _attr(dom.stdout, "data-inner-width")
    assert scroll <= inner, (scroll, inner)  # no sideways scrolling of the page
    links = re.findall(r'<nav class="toc">.*?</nav>', dom.stdout, re.S)[0].count("<a href=")
    assert links == len(report.plots) + len(report.tables)

    shot = tmp_path / "report.png"
    res = _chromium(
        [f"--screenshot={shot}", f"--window-size={width},2000", html.as_uri()],
        tmp_path / "profile2",
    )
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (width, 2000)
        colours = img.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 200  # text, tables and plots, not a blank page
    evidence = os.environ.get("ORCHESTRATE_EVIDENCE_DIR")
    if evidence:
        Path(evidence).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(evidence) / f"report-{width}.png")
