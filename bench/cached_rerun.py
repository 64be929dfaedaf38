"""Benchmark: `make run` first run vs. cached re-run (target: re-run <= 10% of the first).

Runs the digits pipeline twice in a fresh output directory through the real
CLI and writes bench/results/cached_rerun.json.
"""
from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def timed_run(spec_path: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", str(spec_path), "--json"],
                            cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode not in (0, 3):
        raise SystemExit(f"run failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return seconds, json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    data_root = REPO / "data" / "digits"
    if not data_root.is_dir():
        subprocess.run([sys.executable, "-m", "pipelines.cli", "data", "digits", "--out", str(data_root)], check=True)
    work = Path(tempfile.mkdtemp(prefix="imagepipe-bench-"))
    try:
        spec = yaml.safe_load((REPO / "pipelines" / "digits.yaml").read_text())
        spec["data"]["root"] = str(data_root)
        spec["output_dir"] = str(work / "outputs")
        spec_path = work / "digits.yaml"
        spec_path.write_text(yaml.safe_dump(spec))
        first_seconds, first = timed_run(spec_path)
        rerun_seconds, rerun = timed_run(spec_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = rerun_seconds / first_seconds
    result = {
        "benchmark": "cached_rerun",
        "pipeline": "pipelines/digits.yaml",
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "first_run_seconds": round(first_seconds, 1),
        "cached_rerun_seconds": round(rerun_seconds, 1),
        "ratio": round(ratio, 3),
        "target_ratio": 0.10,
        "target_met": ratio <= 0.10,
        "first_run": {k: first[k] for k in ("executed", "accuracy", "pushed_version")},
        "rerun": {k: rerun[k] for k in ("executed", "cached", "already_pushed", "pushed_version")},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cached_rerun.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
