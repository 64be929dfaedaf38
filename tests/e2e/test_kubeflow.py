"""Kubeflow Pipelines v2, end to end: each compiled task's container command runs on this machine in
dependency order (imagepipe/kubeflow_local.py), twice: the second run's resolvers must find the first
run's blessed model, as KFP's would."""
import json

import pytest
import yaml

from imagepipe.datasets import write_digits
from imagepipe.kubeflow_local import ARTIFACT_LOG, ArtifactLog
from tests.conftest import REPO, imagepipe
from tests.imagepipe.test_kubeflow import kubeflow_spec

# Slow (about 4 minutes: two whole runs task by task): `make test-all`. CI compiles every shipped spec
# (tests/imagepipe/test_kubeflow.py) but does not run the compiled tasks.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1500)]


def test_the_compiled_pipeline_runs_task_by_task_and_its_resolvers_find_the_last_blessed_model(tmp_path):
    write_digits(tmp_path / "data" / "digits", per_class=30)
    spec_path = kubeflow_spec(tmp_path)
    spec = yaml.safe_load(spec_path.read_text())
    # This test is about orchestration, not accuracy: thresholds every trained model passes
    # (a CI run once trained a model below 0.3 on these 240 images and pushed nothing).
    spec["trainer"]["epochs"] = 3
    spec["evaluation"] = {"min_accuracy": 0.0, "max_accuracy_drop": 1.0}
    spec["push"]["edge"]["max_int8_degradation"] = 1.0
    # One in-process Beam worker per task: the tasks are small, worker start-up is not.
    spec["beam"] = {"pipeline_args": ["--direct_running_mode=in_memory", "--direct_num_workers=1"]}
    spec_path.write_text(yaml.safe_dump(spec))
    job_file = tmp_path / "pipeline.json"
    compiled = imagepipe("compile", str(spec_path), "--target", "kubeflow", "--output", str(job_file))
    assert compiled.returncode == 0, compiled.stderr[-3000:]

    first = imagepipe("run-compiled", str(job_file), "--project-dir", str(REPO))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "model_blessing: none" in first.stderr  # nothing blessed yet
    cluster = tmp_path / "cluster" / "digits-kfp"
    assert (cluster / "serving" / "digits-kfp" / "1" / "saved_model.pb").is_file(), first.stderr[-3000:]
    assert (cluster / "edge" / "digits-kfp" / "1" / "model_int8.tflite").is_file(), first.stderr[-3000:]
    # The same summary as `imagepipe run` (the spec found through the job's description), and a report.
    assert "9 component(s) executed" in first.stdout, first.stdout
    assert "pushed version 1 to " in first.stdout, first.stdout
    reports = list((cluster / "reports").glob("kfp-local-*/report.html"))
    assert len(reports) == 1 and "Confusion matrix" in reports[0].read_text(), first.stdout

    # Second run, recompiled with a flash budget no model fits: served, but the edge push is refused,
    # and the exit code and JSON say so as `imagepipe run`'s do.
    spec["push"]["edge"]["flash_budget_bytes"] = 1000
    spec_path.write_text(yaml.safe_dump(spec))
    assert imagepipe("compile", str(spec_path), "--target", "kubeflow", "--output", str(job_file)).returncode == 0
    second = imagepipe("run-compiled", str(job_file), "--project-dir", str(REPO), "--json")
    assert second.returncode == 3, second.stderr[-3000:]
    outcome = json.loads(second.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "edge_not_pushed" and outcome["blessed"] is True, outcome
    assert outcome["pushed_version"] == 2 and outcome["edge"]["pushed"] is False, outcome
    assert "> flash budget 1,000 B" in " ".join(outcome["edge"]["refused_because"]), outcome["edge"]
    log = ArtifactLog(cluster / "tfx" / ARTIFACT_LOG)
    models = [a for a in log.artifacts if a["type"]["schemaTitle"] == "tfx.Model"]
    blessings = [a for a in log.artifacts if a["type"]["schemaTitle"] == "tfx.ModelBlessing"]
    assert len(models) == len(blessings) == 2, second.stderr[-3000:]
    # The second Evaluator compared against the first run's model, found by the resolvers.
    assert blessings[1]["metadata"]["baseline_model_id"] == models[0]["name"]
    assert json.loads((cluster / "serving" / "digits-kfp" / "2" / "assets.extra" / "imagepipe_push.json").read_text())
