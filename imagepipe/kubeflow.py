"""Spec -> Kubeflow Pipelines v2 PipelineJob (JSON), through TFX's KubeflowV2DagRunner.

Every task runs the spec's `kubeflow.image`, built by the Dockerfile from the
lock file with this project inside at IMAGE_PROJECT_DIR: that is how the
trainer modules, the preprocessing function and our components reach the
cluster. Paths come from the spec's `kubeflow` section, laid out as for local
runs: <output_dir>/<pipeline>/{tfx,serving,edge}.
"""
from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Dict

from components.contracts import OutputLayout
from imagepipe.run import SCHEMAS, beam_pipeline_args, schema_file
from imagepipe.spec import LoadedSpec, SpecError

# Where the Dockerfile puts the project (its WORKDIR); a test checks they agree.
IMAGE_PROJECT_DIR = "/opt/imagepipe"


def cluster_paths(loaded: LoadedSpec) -> Dict[str, str]:
    """The run's paths as the cluster sees them."""
    kubeflow = loaded.spec.kubeflow
    layout = OutputLayout.of(kubeflow.output_dir.rstrip("/"), loaded.name)
    return {
        "pipeline_root": layout.pipeline_root,
        "serving_base_dir": layout.serving_base_dir,
        "edge_base_dir": layout.edge_base_dir,
        "data_root": kubeflow.data_root or str(loaded.data_root),
        "schema_file": posixpath.join(IMAGE_PROJECT_DIR, "schemas", schema_file(loaded).relative_to(SCHEMAS).as_posix()),
    }


def compile_kubeflow(loaded: LoadedSpec, output_file: Path) -> Dict:
    """Writes the PipelineJob JSON to `output_file` and returns it."""
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    from imagepipe.pipeline import create_pipeline

    if loaded.spec.kubeflow is None:
        raise SpecError(
            f"{loaded.path}: section `kubeflow` is missing; fix: add kubeflow: {{image: <registry>/imagepipe:<tag>, "
            "output_dir: gs://<bucket>/imagepipe}} (see the README, Kubeflow Pipelines)"
        )
    paths = cluster_paths(loaded)
    pipeline = create_pipeline(
        spec=loaded.spec,
        pipeline_root=paths["pipeline_root"],
        metadata_path="",  # Kubeflow keeps its own metadata store
        data_root=paths["data_root"],
        schema_file=paths["schema_file"],
        serving_base_dir=paths["serving_base_dir"],
        edge_base_dir=paths["edge_base_dir"],
        beam_pipeline_args=beam_pipeline_args(loaded, "beam"),
        for_kubeflow=True,
    )
    output_file = Path(output_file)
    output_file.parent.mkdir(parents=True, exist_ok=True)
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        # Schema 2.1: typed parameter values, the form KFP 2 backends and TFX's
        # ExampleGen driver hand-over (span, resolved pattern) agree on.
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            default_image=loaded.spec.kubeflow.image, use_pipeline_spec_2_1=True),
        output_dir=str(output_file.parent),
        output_filename=output_file.name,
    )
    runner.run(pipeline, write_out=True)
    return json.loads(output_file.read_text())
