"""Production retraining of the digits pipeline, end to end through the CLI.

Week 1: span 1 only, local runner, pushed as version 1 (stable and canary).
Week 2: span 2 arrives; the same spec, on the beam runner, trains on the newest
span starting from week 1's blessed weights, and pushes version 2 as canary.
Then promote and rollback, with models.config read back (TF Serving's protos)
after each step, and the run history from ML Metadata.
"""
import json
import shutil

import pytest
import yaml

from components import serving_rollout
from imagepipe import results
from imagepipe.datasets import write_digits
from tests.conftest import REPO, imagepipe

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]
PIPELINE = "digits-weekly"


def run_logs(output_dir):
    """The full log of each run, oldest first (`--json` keeps progress off the terminal)."""
    return [path.read_text() for path in sorted((output_dir / PIPELINE / "logs").glob("run-*.log"))]


def first_epoch_accuracy(log: str) -> float:
    line = next(line for line in log.splitlines() if "imagepipe epoch 1/" in line)
    return float(line.split("val_accuracy=")[1].split()[0])


def split_into_spans(pool, data, spans):
    """Deals each class's images round-robin into span-1 .. span-N."""
    for class_dir in sorted(pool.iterdir()):
        for index, image in enumerate(sorted(class_dir.iterdir())):
            target = data / f"span-{index % spans + 1}" / class_dir.name
            target.mkdir(parents=True, exist_ok=True)
            shutil.move(str(image), target / image.name)


def test_a_new_span_is_retrained_warm_on_beam_pushed_as_canary_promoted_and_rolled_back(tmp_path):
    write_digits(tmp_path / "pool", per_class=60)
    drops = tmp_path / "drops"
    split_into_spans(tmp_path / "pool", drops, 2)
    data = tmp_path / "data"
    data.mkdir()
    shutil.move(str(drops / "span-1"), data / "span-1")  # week 1: one drop so far

    spec = yaml.safe_load((REPO / "pipelines" / "digits.yaml").read_text())
    spec["pipeline"] = PIPELINE
    spec["data"]["root"] = str(data / "span-{SPAN}")
    spec["output_dir"] = str(tmp_path / "outputs")
    spec["trainer"]["epochs"] = 10  # 240 training images a week: enough epochs to bless reliably
    spec["trainer"]["warm_start"] = True
    spec["evaluation"] = {"min_accuracy": 0.3, "max_accuracy_drop": 0.2}
    spec["push"]["edge"]["max_int8_degradation"] = 0.2
    spec_path = tmp_path / f"{PIPELINE}.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    serving_dir = tmp_path / "outputs" / PIPELINE / "serving"

    week1 = imagepipe("run", str(spec_path), "--runner", "local", "--json")
    assert week1.returncode == results.EXIT_PUSHED, week1.stdout[-2000:] + week1.stderr[-3000:]
    week1_summary = json.loads(week1.stdout.strip().splitlines()[-1])
    assert (week1_summary["span"], week1_summary["pushed_version"]) == (1, 1)
    rollout = serving_rollout.read(serving_dir)
    assert (rollout.stable, rollout.canary) == (1, 1)

    shutil.move(str(drops / "span-2"), data / "span-2")  # week 2's drop arrives
    week2 = imagepipe("run", str(spec_path), "--runner", "beam", "--json")
    assert week2.returncode == results.EXIT_PUSHED, week2.stdout[-2000:] + week2.stderr[-3000:]
    week2_summary = json.loads(week2.stdout.strip().splitlines()[-1])
    assert (week2_summary["span"], week2_summary["pushed_version"]) == (2, 2)
    assert week2_summary["files_ingested"] == week1_summary["files_ingested"] == 300  # the newest span only
    week1_log, week2_log = run_logs(tmp_path / "outputs")
    assert "beam_dag_runner" in week2_log and "beam_dag_runner" not in week1_log
    # Warm: week 2's first epoch already knows the digits that week 1 learned.
    assert "imagepipe warm start from" in week2_log
    assert first_epoch_accuracy(week2_log) > first_epoch_accuracy(week1_log) + 0.15
    rollout = serving_rollout.read(serving_dir)
    assert (rollout.stable, rollout.canary) == (1, 2)

    output_dir = str(tmp_path / "outputs")
    promoted = imagepipe("promote", PIPELINE, "--output-dir", output_dir)
    assert promoted.returncode == 0, promoted.stderr
    assert (serving_rollout.read(serving_dir).stable, serving_rollout.read(serving_dir).canary) == (2, 2)

    rolled_back = imagepipe("rollback", PIPELINE, "--output-dir", output_dir)
    assert rolled_back.returncode == 0, rolled_back.stderr
    rollout = serving_rollout.read(serving_dir)
    assert (rollout.stable, rollout.canary) == (1, 1)
    assert (serving_dir / PIPELINE / "2" / "saved_model.pb").is_file()  # kept, only relabelled

    history = imagepipe("runs", str(spec_path), "--json")
    assert history.returncode == 0, history.stderr
    listed = [json.loads(line) for line in history.stdout.strip().splitlines()]
    assert [(run["span"], run["pushed_version"], run["status"]) for run in listed] == [(1, 1, "pushed"), (2, 2, "pushed")]
