"""Counts of images ingested, shown while ImageExampleGen runs.

Beam's own counters are only readable once the job has finished, and in
multi-processing mode the decoding happens in other processes. So each
decoding worker writes its running count into a small file of a shared local
folder, and a thread of the executor adds the files up and logs the total.
Workers on other machines (Flink, Spark, Dataflow) cannot see that folder:
their writes fail quietly, and only the final count is logged.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from typing import Callable, Iterator, Optional

# Logged lines start with "imagepipe ", which `imagepipe run` shows as progress.
LOG_PREFIX = "imagepipe ingested"


class WorkerCount:
    """One decoding worker's count, written to <folder>/<unique name> at most every `interval` seconds."""

    def __init__(self, folder: Optional[str], interval: float = 1.0):
        self._path = os.path.join(folder, uuid.uuid4().hex) if folder else None
        self._interval = interval
        self._count = 0
        # None, not 0.0: time.monotonic() counts from boot, so on a machine up for less
        # than `interval` seconds a zero start would hold back the first write.
        self._written_at: Optional[float] = None

    def add(self, files: int = 1) -> None:
        self._count += files
        if self._written_at is None or time.monotonic() - self._written_at >= self._interval:
            self.flush()

    def flush(self) -> None:
        if self._path is None:
            return
        self._written_at = time.monotonic()
        staging = f"{self._path}.tmp"
        try:
            with open(staging, "w") as f:
                f.write(str(self._count))
            os.replace(staging, self._path)  # readers never see a half-written number
        except OSError:  # a worker on another machine: no live counts, the run goes on
            self._path = None


def total(folder: str) -> int:
    count = 0
    for name in os.listdir(folder):
        if name.endswith(".tmp"):
            continue
        try:
            with open(os.path.join(folder, name)) as f:
                count += int(f.read() or 0)
        except (OSError, ValueError):
            continue
    return count


def _line(done: int, expected: Optional[int], seconds: float) -> str:
    rate = f"{done / seconds:,.0f} files/s" if seconds > 0 else ""
    if not expected:
        return f"{LOG_PREFIX} {done:,} files ({rate})"
    return f"{LOG_PREFIX} {done:,}/{expected:,} files ({100 * done / expected:.0f}%, {rate})"


def _call(expected: Callable[[], int]) -> Optional[int]:
    try:
        return expected()
    except Exception:  # not known yet
        return None


@contextlib.contextmanager
def watch(expected: Callable[[], int], log: Callable[[str], None] = logging.info, interval: float = 2.0) -> Iterator[str]:
    """Yields a folder for WorkerCount; logs the running total every `interval`
    seconds while it changes. `expected()` is the number of files to ingest,
    once known. The caller logs the final count from the ingest
    report, which is right on every runner."""
    folder = tempfile.mkdtemp(prefix="imagepipe-ingest-")
    started = time.monotonic()
    stop = threading.Event()

    def report() -> None:
        shown = 0  # nothing until the first files are through: worker start-up can take seconds
        while not stop.wait(interval):
            done = total(folder)
            if done != shown:
                log(_line(done, _call(expected), time.monotonic() - started))
                shown = done

    thread = threading.Thread(target=report, name="imagepipe-ingest-progress", daemon=True)
    thread.start()
    try:
        yield folder
    finally:
        stop.set()
        thread.join()
        shutil.rmtree(folder, ignore_errors=True)
