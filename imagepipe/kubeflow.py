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
from typing import Dict, Optional

from pydantic import ValidationError

from components.contracts import OutputLayout
from imagepipe.run import SCHEMAS, beam_pipeline_args, schema_file
from imagepipe.spec import KubeflowSpec, LoadedSpec, SpecError

# Where the Dockerfile puts the project (its WORKDIR); a test checks they agree.
IMAGE_PROJECT_DIR = "/opt/imagepipe"
# Without a `kubeflow` section or flags: the image `docker build -t imagepipe:<version> .` makes, and
# outputs on a volume mounted at /mnt/imagepipe in every task (documented in the README).
DEFAULT_IMAGE = "imagepipe:0.1.0"
DEFAULT_OUTPUT_DIR = "/mnt/imagepipe/outputs"
# The job's description names the spec it was compiled from: `imagepipe run-compiled` reads it back
# for the run's summary and report.
SPEC_NOTE = "compiled by imagepipe from "


def kubeflow_settings(loaded: LoadedSpec, image: Optional[str] = None, output_dir: Optional[str] = None
                      ) -> KubeflowSpec:
    """The spec's `kubeflow` section with the command line's --image / --pipeline-root over it, and the
    defaults where neither says; validated as the section is (SpecError names the fix)."""
    section = loaded.spec.kubeflow.model_dump() if loaded.spec.kubeflow else {}
    section["image"] = image or section.get("image") or DEFAULT_IMAGE
    section["output_dir"] = output_dir or section.get("output_dir") or DEFAULT_OUTPUT_DIR
    try:
        return KubeflowSpec.model_validate(section)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SpecError(f"{loaded.path}: kubeflow settings: {problems}") from None


def cluster_paths(loaded: LoadedSpec, kubeflow: KubeflowSpec) -> Dict[str, str]:
    """The run's paths as the cluster sees them."""
    layout = OutputLayout.of(kubeflow.output_dir.rstrip("/"), loaded.name)
    return {
        "pipeline_root": layout.pipeline_root,
        "serving_base_dir": layout.serving_base_dir,
        "edge_base_dir": layout.edge_base_dir,
        "data_root": kubeflow.data_root or str(loaded.data_root),
        "schema_file": posixpath.join(IMAGE_PROJECT_DIR, "schemas", schema_file(loaded).relative_to(SCHEMAS).as_posix()),
    }


def compile_kubeflow(loaded: LoadedSpec, output_file: Path, image: Optional[str] = None,
                     output_dir: Optional[str] = None) -> Dict:
    """Writes the PipelineJob JSON to `output_file` and returns it."""
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    from imagepipe.pipeline import create_pipeline

    kubeflow = kubeflow_settings(loaded, image, output_dir)
    paths = cluster_paths(loaded, kubeflow)
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
            default_image=kubeflow.image, use_pipeline_spec_2_1=True),
        output_dir=str(output_file.parent),
        output_filename=output_file.name,
    )
    runner.run(pipeline, write_out=True)
    job = json.loads(output_file.read_text())
    job["pipelineSpec"]["pipelineInfo"]["description"] = SPEC_NOTE + str(Path(loaded.path).resolve())
    output_file.write_text(json.dumps(job, indent=2, sort_keys=True))
    return job
