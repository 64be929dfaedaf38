"""Checks a run report the way a reader sees it: every section filled, every
chart inlined, and the page rendered by headless Chromium (a screenshot is kept
beside the report)."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SECTIONS = ("data", "anomalies", "training", "evaluation", "pushed")
EMPTY_MARKERS = ("No examples were recorded", "did not run", "No training history")


def check_report(report: Path, expected_charts: int, must_contain=()):
    html = report.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in html, section
    for marker in EMPTY_MARKERS:
        assert marker not in html, marker
    charts = re.findall(r'<img alt="[^"]+" src="data:image/png;base64,', html)
    assert len(charts) == expected_charts
    assert not re.search(r'src="(?!data:)', html)  # self-contained: nothing fetched
    for text in must_contain:
        assert text in html, text


def screenshot(report: Path) -> Path:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt install chromium)")
    shot = report.with_name("screenshot.png")
    result = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                             "--window-size=1200,6000", f"--screenshot={shot}", report.resolve().as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.stat().st_size > 50_000  # a rendered page of charts, not a blank one
    return shot
