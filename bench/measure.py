"""What the benchmarks share: sampling machine CPU use and a process tree's resident memory while
something runs, and writing bench/results/<name>.json."""
from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import threading
import time
from importlib import metadata
from pathlib import Path

import psutil

RESULTS = Path(__file__).resolve().parent / "results"


# The packages whose versions change what a benchmark measures.
PACKAGES = ("tensorflow", "keras", "tfx", "apache-beam", "tensorflow-transform", "tensorflow-model-analysis",
            "tflite-micro", "pillow", "numpy")
REPO = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def short_commit() -> str:
    """The checkout's commit, short: what a single run within a results file records."""
    return _git("rev-parse", "--short", "HEAD")


def provenance() -> dict:
    """What a result was measured on: the commit (and whether the tree had uncommitted changes),
    when, and the machine: cores, memory, CPU model, Python and the package versions that matter."""
    cpu_model = ""
    if Path("/proc/cpuinfo").is_file():
        cpu_model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                          if line.startswith("model name")), "")
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "commit": _git("rev-parse", "HEAD") or None,
        "uncommitted_changes": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "cpu_model": cpu_model,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "packages": versions,
        },
    }


def write_result(name: str, result: dict) -> Path:
    """bench/results/<name>.json, with the provenance of the measurement."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**result, "provenance": provenance()}, indent=2) + "\n")
    return path


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants (Beam workers, TFX task processes)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:  # ended between listing and reading
            continue
    return total


class Sampler:
    """Every `interval` seconds: machine-wide CPU use (fraction of all cores) and
    the resident memory of the process tree rooted at `pid` (default: this one)."""

    def __init__(self, pid: int | None = None, interval: float = 0.25):
        self.samples: list[tuple[float, float, int]] = []
        self._process = psutil.Process(pid or os.getpid())
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        psutil.cpu_percent(None)
        while not self._stop.wait(self._interval):
            try:
                rss = tree_rss(self._process)
            except psutil.Error:  # the watched process has ended
                rss = 0
            self.samples.append((time.time(), psutil.cpu_percent(None) / 100, rss))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _between(self, start: float | None, end: float | None, column: int) -> list:
        return [s[column] for s in self.samples if (start is None or start <= s[0]) and (end is None or s[0] <= end)]

    def mean_cpu_between(self, start: float | None = None, end: float | None = None) -> float | None:
        inside = self._between(start, end, 1)
        return round(statistics.mean(inside), 3) if inside else None

    def peak_rss_mb_between(self, start: float | None = None, end: float | None = None) -> float | None:
        inside = self._between(start, end, 2)
        return round(max(inside) / 2**20, 1) if inside else None
