"""Two runs of one pipeline at once: the second refuses, clearly, and touches nothing."""
import json
import subprocess
import sys

import yaml

from imagepipe import results
from imagepipe import run as runs
from imagepipe.spec import load_spec
from tests.conftest import REPO, encode, gradient


def test_a_second_run_of_the_same_pipeline_is_refused_while_one_holds_the_lock(tmp_path):
    for digit in ("0", "1"):  # a classifier needs two classes
        (tmp_path / "data" / "digits" / digit).mkdir(parents=True)
        (tmp_path / "data" / "digits" / digit / "a.png").write_bytes(encode(gradient(8, 8, 1), "PNG"))
    spec = yaml.safe_load((REPO / "pipelines" / "digits.yaml").read_text())
    spec["data"]["root"] = str(tmp_path / "data" / "digits")
    spec["output_dir"] = str(tmp_path / "outputs")
    spec_path = tmp_path / "digits.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    output_dir = load_spec(spec_path, check_paths=False).output_dir

    # The first "run": another process holding the lock, as a running pipeline does.
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from imagepipe.run import run_lock\n"
        f"with run_lock(Path({str(output_dir)!r})):\n    print('locked', flush=True); time.sleep(60)")],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = subprocess.run([sys.executable, "-m", "imagepipe.cli", "run", str(spec_path), "--json"],
                                cwd=REPO, capture_output=True, text=True, timeout=300)
    finally:
        holder.kill()
        holder.wait()
    assert second.returncode == results.EXIT_FAILED
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert summary["status"] == "busy"
    assert f"another run of this pipeline is in progress (pid {holder.pid}" in summary["error"]
    assert not (output_dir / "metadata.sqlite").exists()  # nothing was started

    # A killed holder leaves no stale lock: the kernel released it.
    with runs.run_lock(output_dir):
        pass
