"""Kubeflow Pipelines v2: the compiled job parses strictly and every task runs our image.
(tests/e2e/test_kubeflow.py runs the compiled tasks.)"""
import json
import re
import shutil
import subprocess

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from imagepipe.kubeflow import IMAGE_PROJECT_DIR, compile_kubeflow
from imagepipe.kubeflow_local import ARTIFACT_LOG, ArtifactLog, task_order
from imagepipe.spec import SpecError, load_spec
from tests.conftest import REPO, imagepipe

IMAGE = "registry.example.com/ml/imagepipe:test"


def kubeflow_spec(root, **overrides):
    spec = yaml.safe_load((REPO / "pipelines" / "digits.yaml").read_text())
    spec["pipeline"] = "digits-kfp"
    spec["data"]["root"] = str(root / "data" / "digits")
    spec["kubeflow"] = {"image": IMAGE, "output_dir": str(root / "cluster")}
    spec.update(overrides)
    path = root / "digits-kfp.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_the_compiled_job_parses_strictly_and_every_task_runs_our_image(tmp_path):
    loaded = load_spec(kubeflow_spec(tmp_path), check_paths=False)
    job = compile_kubeflow(loaded, tmp_path / "pipeline.json")

    text = (tmp_path / "pipeline.json").read_text()
    json_format.Parse(text, pipeline_spec_pb2.PipelineJob())  # strict: unknown fields fail
    spec = json_format.ParseDict(job["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    assert spec.schema_version == "2.1.0"
    assert job["runtimeConfig"]["gcsOutputDirectory"] == str(tmp_path / "cluster" / "digits-kfp" / "tfx")

    executors = spec.deployment_spec["executors"]
    containers = {name: e["container"] for name, e in executors.items() if "container" in e}
    assert len(containers) == 9  # ExampleGen .. EdgePusher; the two resolver tasks are queries
    assert {c["image"] for c in containers.values()} == {IMAGE}
    resolvers = [e["resolver"] for e in executors.values() if "resolver" in e]
    assert len(resolvers) == 2

    parameters = {key: value for task in job["pipelineSpec"]["root"]["dag"]["tasks"].values()
                  for key, value in task.get("inputs", {}).get("parameters", {}).items()}
    assert parameters["schema_file"]["runtimeValue"]["constant"] == f"{IMAGE_PROJECT_DIR}/schemas/image_examples.pbtxt"
    assert parameters["input_base"]["runtimeValue"]["constant"] == str(tmp_path / "data" / "digits")
    order = task_order(job)
    assert order.index("ImageExampleGen") < order.index("Transform") < order.index("Trainer") < order.index("Pusher")
    # StatisticsGen reads the schema, whose image_domain keeps every image's bytes out of TFDV's exact top-k
    # and unique counts (tests/components/test_example_validator.py): its memory grew with the images.
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    assert "schema" in tasks["StatisticsGen"]["inputs"]["artifacts"]
    assert order.index("SchemaGen") < order.index("StatisticsGen")


def test_the_readme_compile_command_works_as_written(tmp_path):
    result = imagepipe("compile", "pipelines/digits.yaml", "--target", "kubeflow", "--output",
                       str(tmp_path / "pipeline.json"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "image imagepipe:0.1.0, pipeline root /mnt/imagepipe/outputs/digits/tfx" in result.stdout


@pytest.mark.parametrize("spec_file", sorted(p.name for p in (REPO / "pipelines").glob("*.yaml")))
def test_every_shipped_spec_compiles_without_a_kubeflow_section(spec_file, tmp_path):
    loaded = load_spec(REPO / "pipelines" / spec_file, check_paths=False)
    assert loaded.spec.kubeflow is None
    job = compile_kubeflow(loaded, tmp_path / "pipeline.json")
    assert job["runtimeConfig"]["gcsOutputDirectory"] == f"/mnt/imagepipe/outputs/{loaded.name}/tfx"
    assert {"Trainer", "Evaluator", "Pusher"} <= set(job["pipelineSpec"]["root"]["dag"]["tasks"])


def test_the_flags_set_image_and_pipeline_root_and_a_bad_one_is_refused_with_a_valid_fix(tmp_path):
    loaded = load_spec(kubeflow_spec(tmp_path, kubeflow=None), check_paths=False)
    job = compile_kubeflow(loaded, tmp_path / "p.json", image=IMAGE, output_dir="/gcs/b/imagepipe")
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "/gcs/b/imagepipe/digits-kfp/tfx"
    with pytest.raises(SpecError, match="relative/outputs.* must be an object-store URI .*or an absolute path"):
        compile_kubeflow(loaded, tmp_path / "p.json", output_dir="relative/outputs")
    with pytest.raises(SpecError, match="only gs:// and s3:// object stores"):
        compile_kubeflow(loaded, tmp_path / "p.json", output_dir="ftp://host/imagepipe")


def test_an_object_store_output_dir_is_the_pipeline_root_and_the_push_targets(tmp_path):
    loaded = load_spec(kubeflow_spec(tmp_path, kubeflow={"image": IMAGE, "output_dir": "gs://bucket/imagepipe"}),
                       check_paths=False)
    job = compile_kubeflow(loaded, tmp_path / "p.json")
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/imagepipe/digits-kfp/tfx"
    pushers = json.dumps({name: task for name, task in job["pipelineSpec"]["root"]["dag"]["tasks"].items()
                          if "Pusher" in name})
    assert "gs://bucket/imagepipe/digits-kfp/serving/digits-kfp" in pushers
    assert "gs://bucket/imagepipe/digits-kfp/edge/digits-kfp" in pushers


def test_the_dockerfile_installs_the_lock_and_puts_the_project_where_tasks_look():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^WORKDIR (\S+)$", dockerfile, re.M).group(1) == IMAGE_PROJECT_DIR
    assert "--require-hashes --no-deps -r requirements.lock" in dockerfile
    packaged = re.findall(r'"(\w+)\*"', (REPO / "pyproject.toml").read_text().split("packages.find", 1)[1].split("\n\n")[0])
    for folder in packaged + ["schemas"]:
        assert re.search(rf"^COPY {folder} \./{folder}$", dockerfile, re.M), folder


@pytest.mark.skipif(shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode,
                    reason="no Docker daemon on this machine")
def test_the_image_builds():
    subprocess.run(["docker", "build", "-t", IMAGE, str(REPO)], check=True)


def test_a_resolver_query_returns_the_newest_match_and_follows_placeholders(tmp_path):
    log = ArtifactLog(tmp_path / ARTIFACT_LOG)
    model = {"schemaTitle": "tfx.Model"}
    blessing = {"schemaTitle": "tfx.ModelBlessing"}
    log.add([
        {"name": "m1", "type": model, "uri": "/m1", "metadata": {}},
        {"name": "b1", "type": blessing, "uri": "/b1", "metadata": {"blessed": 1.0, "current_model_id": "m1"}},
        {"name": "m2", "type": model, "uri": "/m2", "metadata": {}},
        {"name": "b2", "type": blessing, "uri": "/b2", "metadata": {"blessed": 0.0, "current_model_id": "m2"}},
    ])
    reloaded = ArtifactLog(tmp_path / ARTIFACT_LOG)
    blessed = reloaded.query('schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1', {})
    assert [a["name"] for a in blessed] == ["b1"]
    query = "schema_title=\"tfx.Model\" AND state=LIVE AND name=\"{{$.inputs.artifacts['input'].metadata['current_model_id']}}\""
    assert [a["uri"] for a in reloaded.query(query, {"input": blessed})] == ["/m1"]
    assert reloaded.query(query, {"input": []}) == []


def test_a_compiled_run_is_summarized_from_its_artifact_list_as_a_local_run_is_from_ml_metadata(tmp_path):
    """run-compiled's exit code and JSON come from the tasks' output artifacts (KFP metadata, not MLMD)."""
    from imagepipe.kubeflow_local import CompiledRun
    from imagepipe.results import RunSummary, read_outputs

    edge_dir = tmp_path / "edge_report"
    edge_dir.mkdir()
    (edge_dir / "edge_report.json").write_text('{"refused_because": ["int8 model 2,384 B > flash budget 1,000 B"]}')
    record = CompiledRun(run_id="kfp-local-1", started_at="2026-12-01T00:00:00Z", executed=["Evaluator", "Pusher", "EdgePusher"])
    record.produced = {
        "Evaluator": {"blessing": [{"type": {"schemaTitle": "tfx.ModelBlessing"}, "uri": "b", "metadata": {"blessed": 1.0}}]},
        "Pusher": {"pushed_model": [{"type": {"schemaTitle": "tfx.PushedModel"}, "uri": "p",
                                     "metadata": {"pushed": 1.0, "pushed_version": "2", "pushed_destination": "/s/2"}}]},
        "EdgePusher": {"pushed_model": [{"type": {"schemaTitle": "tfx.PushedModel"}, "uri": str(edge_dir),
                                         "metadata": {"pushed": 0.0}}]},
    }
    summary = RunSummary(pipeline="digits", run_id=record.run_id, executed=record.executed, cached=[])
    read_outputs(summary, record.outputs())
    assert (summary.blessed, summary.pushed, summary.pushed_version) == (True, True, 2)
    assert summary.edge["pushed"] is False and "flash budget 1,000 B" in summary.edge["refused_because"][0]
    assert summary.status == "edge_not_pushed" and summary.exit_code == 3
