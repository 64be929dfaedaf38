"""The whole pipeline with its outputs in an object store: compiled for Kubeflow with
`--pipeline-root gs://...`, every task run on this machine (`imagepipe run-compiled`) against a
GCS-compatible server on 127.0.0.1 (tests/fake_gcs.py). Beam writes the examples and statistics through
its GCS file system, TensorFlow writes the Transform graph, the model and the pushes through its own;
nothing of the run's outputs is on the local disk but the report and the runner's logs."""
import pytest
import yaml

from imagepipe.datasets import write_digits
from tests.conftest import REPO, imagepipe
from tests.e2e.report_checks import check_report
from tests.fake_gcs import FakeGCS
from tests.imagepipe.test_kubeflow import kubeflow_spec

# Slow (about 4 minutes alone, 5 in a CI run: nine task processes): `make test-all`. CI runs the object-store
# pushes, rollout and CLI against the same server (tests/components/test_object_store.py).
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

BUCKET = "imagepipe-runs"


def test_a_compiled_run_writes_its_artifacts_and_pushes_to_the_object_store(tmp_path, monkeypatch):
    write_digits(tmp_path / "data" / "digits", per_class=30)
    spec_path = kubeflow_spec(tmp_path)
    spec = yaml.safe_load(spec_path.read_text())
    # About the storage, not accuracy (as tests/e2e/test_kubeflow.py): thresholds every trained model passes.
    spec["trainer"]["epochs"] = 2
    spec["evaluation"] = {"min_accuracy": 0.0, "max_accuracy_drop": 1.0}
    spec["push"]["edge"]["max_int8_degradation"] = 1.0
    spec["beam"] = {"pipeline_args": ["--direct_running_mode=in_memory", "--direct_num_workers=1"]}
    spec["output_dir"] = str(tmp_path / "local")  # the report and the runner's own files
    spec_path.write_text(yaml.safe_dump(spec))
    job_file = tmp_path / "pipeline.json"
    root = f"gs://{BUCKET}/imagepipe"
    compiled = imagepipe("compile", str(spec_path), "--target", "kubeflow", "--output", str(job_file),
                         "--pipeline-root", root)
    assert compiled.returncode == 0, compiled.stderr[-3000:]

    with FakeGCS(tmp_path / "gcs", buckets=[BUCKET]) as gcs:
        for key, value in gcs.environment.items():
            monkeypatch.setenv(key, value)  # the CLI and every task it starts inherit them
        run = imagepipe("run-compiled", str(job_file), "--project-dir", str(REPO))
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
        assert "report could not be written" not in run.stdout + run.stderr, run.stdout + run.stderr[-3000:]
        stored = gcs.objects(BUCKET, "imagepipe/digits-kfp/")

    names = set(stored)
    serving = "imagepipe/digits-kfp/serving/"
    assert {f"{serving}models.config", f"{serving}digits-kfp/1/saved_model.pb",
            f"{serving}digits-kfp/1/assets.extra/imagepipe_push.json"} <= names, sorted(names)[:50]
    edge = "imagepipe/digits-kfp/edge/digits-kfp/"
    assert {f"{edge}latest", f"{edge}1/manifest.json", f"{edge}1/model_int8.tflite"} <= names, sorted(names)[:50]
    # Every component's artifacts are in the bucket: Beam's examples, the Transform graph, the model.
    tfx = [name for name in names if name.startswith("imagepipe/digits-kfp/tfx/")]
    assert any("/Split-train/" in name and name.endswith(".gz") for name in tfx), sorted(tfx)[:40]
    assert any("transform_fn/saved_model.pb" in name for name in tfx), sorted(tfx)[:40]
    assert any("Format-Serving/saved_model.pb" in name for name in tfx), sorted(tfx)[:40]
    assert f"pushed version 1 to gs://{BUCKET}/imagepipe/digits-kfp/serving/digits-kfp/1" in run.stdout, run.stdout
    assert not (tmp_path / "cluster").exists()
    # The report is drawn from the artifacts in the store, and written on this machine.
    reports = list((tmp_path / "local" / "digits-kfp" / "reports").glob("kfp-local-*/report.html"))
    assert len(reports) == 1, run.stdout + run.stderr[-3000:]
    check_report(reports[0], expected_charts=6, must_contain=["Confusion matrix", "Misclassified eval images"])
