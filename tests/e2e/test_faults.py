"""Faults: a run killed (SIGKILL, no clean-up) during the Trainer, and one killed
during the pushes. The re-run completes, reuses what finished, and no
half-written version is ever visible in serving/ or edge/.

The sine pipeline keeps this fast: about a minute per run on 2 cores."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from imagepipe import results
from tests.conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def start(spec_path):
    return subprocess.Popen([sys.executable, "-m", "imagepipe.cli", "run", str(spec_path)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def kill_when(process, marker, timeout=600):
    """SIGKILL the run's whole process group as soon as its progress shows `marker`."""
    deadline = time.time() + timeout
    for line in process.stderr:
        if marker in line:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return
        assert time.time() < deadline, f"no {marker!r} within {timeout} s"
    raise AssertionError(f"the run ended (exit {process.wait()}) before {marker!r}")


def visible_versions(base):
    """What TF Serving or a device flasher would pick up: integer-named folders."""
    return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit()) if base.is_dir() else []


def assert_complete(serving_base, edge_base):
    for version in visible_versions(serving_base):
        assert (serving_base / str(version) / "saved_model.pb").is_file()
        assert (serving_base / str(version) / "variables" / "variables.index").is_file()
    for version in visible_versions(edge_base):
        manifest = json.loads((edge_base / str(version) / "manifest.json").read_text())
        for name in manifest["files"]:
            assert (edge_base / str(version) / name).is_file(), name


def test_killed_runs_leave_no_half_written_version_and_the_rerun_completes(tmp_path):
    spec = yaml.safe_load((REPO / "pipelines" / "sine.yaml").read_text())
    spec["output_dir"] = str(tmp_path / "outputs")
    spec["data"]["root"] = str(tmp_path / "data" / "sine")
    spec_path = tmp_path / "sine.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "outputs" / "sine"
    serving_base, edge_base = out / "serving" / "sine", out / "edge" / "sine"

    kill_when(start(spec_path), "epoch 1/")  # mid-training
    assert visible_versions(serving_base) == [] and visible_versions(edge_base) == []

    kill_when(start(spec_path), "running EdgePusher")  # the serving push is done, the edge push is under way
    assert visible_versions(serving_base) == [1]
    assert visible_versions(edge_base) == []
    assert_complete(serving_base, edge_base)

    rerun = subprocess.run([sys.executable, "-m", "imagepipe.cli", "run", str(spec_path), "--json"], cwd=REPO,
                           capture_output=True, text=True, timeout=900)
    assert rerun.returncode == results.EXIT_PUSHED, rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout.strip().splitlines()[-1])
    # Everything that finished before the kills is reused; only the edge push runs again.
    assert {"CsvExampleGen", "StatisticsGen", "Trainer", "Evaluator", "Pusher"} <= set(summary["cached"])
    assert "EdgePusher" in summary["executed"]
    assert visible_versions(serving_base) == [1] and visible_versions(edge_base) == [1]
    assert_complete(serving_base, edge_base)
    # The lock died with the killed runs: nothing to clean up by hand.
    assert summary["status"] == "pushed"


def test_a_component_that_kills_its_process_still_ends_the_run_with_the_failure_named(tmp_path):
    """As when the out-of-memory killer (or a segfault in a decoder) takes the pipeline's process:
    `imagepipe run` reports which component died and posts the webhook (the JSON summary)."""
    import psutil

    from tests.imagepipe.test_notify import local_webhook

    spec = yaml.safe_load((REPO / "pipelines" / "sine.yaml").read_text())
    spec["output_dir"] = str(tmp_path / "outputs")
    spec["data"]["root"] = str(tmp_path / "data" / "sine")
    spec_path = tmp_path / "sine.yaml"
    with local_webhook() as (url, received):
        spec["notify"] = {"webhook": url}
        spec_path.write_text(yaml.safe_dump(spec))
        cli = subprocess.Popen([sys.executable, "-m", "imagepipe.cli", "run", str(spec_path)], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 600
        for line in cli.stderr:
            if "epoch 1/" in line:  # the Trainer is running in the worker process: kill only that one
                for child in psutil.Process(cli.pid).children(recursive=True):
                    child.kill()
                break
            assert time.time() < deadline
        out, err = cli.communicate(timeout=120)
    assert cli.returncode == results.EXIT_FAILED, err[-3000:]
    assert "run failed: the run's process died in Trainer (signal 9 (SIGKILL))" in err
    [outcome] = received
    assert outcome["status"] == "failed" and outcome["failed"] == ["Trainer"]
    assert "the run's process died in Trainer (signal 9 (SIGKILL)); full log: " in outcome["error"]
    history = subprocess.run([sys.executable, "-m", "imagepipe.cli", "runs", str(spec_path), "--json"], cwd=REPO,
                             capture_output=True, text=True, timeout=300)
    assert json.loads(history.stdout.strip().splitlines()[-1])["status"] == "incomplete"  # not "not_blessed"
