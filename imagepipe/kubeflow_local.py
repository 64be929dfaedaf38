"""Runs a compiled Kubeflow Pipelines v2 job on this machine, task by task.

This plays the part of the KFP backend, so that we know the compiled pipeline
really runs, not only that it parses: tasks in dependency order; for each, the
ExecutorInput JSON that KFP would substitute for `{{$}}` (parameters, upstream
artifacts, output URIs under the job's pipeline root); then the container's
own command (driver hook first, where there is one) in a subprocess with this
Python instead of the image's. Resolver tasks are answered from the artifacts
earlier local runs of the job recorded, with KFP's filter syntax.

The image's project folder (IMAGE_PROJECT_DIR) is mapped to `project_dir`, as
a volume mount would. No caching: every task runs every time.

Output artifacts go under the job's pipeline root, a local path or an object-store
URI (gs://, s3://) as on a cluster; what this runner keeps for itself (each task's
executor input and output, its logs, the artifact log) stays on this machine, in
`work_dir` (see local_work_dir).
"""
from __future__ import annotations

import dataclasses
import graphlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, List, Optional

from components import versioned_store
from components.contracts import OutputLayout
from imagepipe.kubeflow import IMAGE_PROJECT_DIR, SPEC_NOTE
from imagepipe.results import RunArtifact, RunSummary, read_outputs, serving_now

ARTIFACT_LOG = "kfp_local_artifacts.json"
_PLACEHOLDER = re.compile(r"\{\{\$\.inputs\.artifacts\['(\w+)'\]\.metadata\['(\w+)'\]\}\}")


class TaskFailed(RuntimeError):
    def __init__(self, message: str, task: Optional[str] = None):
        super().__init__(message)
        self.task = task


def task_order(job: Dict) -> List[str]:
    """Task names so that every task comes after the tasks it consumes from."""
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    graph = {}
    for name, task in tasks.items():
        producers = {ref["taskOutputArtifact"]["producerTask"]
                     for ref in task.get("inputs", {}).get("artifacts", {}).values()}
        graph[name] = set(task.get("dependentTasks", [])) | producers
    return list(graphlib.TopologicalSorter(graph).static_order())


def _schema_title(artifact_definition: Dict) -> str:
    artifact_type = artifact_definition["artifactType"]
    if "schemaTitle" in artifact_type:
        return artifact_type["schemaTitle"]
    return re.search(r"title: (\S+)", artifact_type["instanceSchema"]).group(1)


def _parameter_value(name: str, runtime_value: Dict):
    """A task's constant parameter (pipeline spec schema 2.1), as a google.protobuf.Value in JSON."""
    if "constant" not in runtime_value:
        raise TaskFailed(f"parameter {name}: only pipeline spec schema 2.1 (`constant` values) is supported; "
                         "fix: compile with `imagepipe compile`")
    return runtime_value["constant"]


class ArtifactLog:
    """What a metadata store would know: every artifact local runs produced."""

    def __init__(self, path: Path):
        self.path = path
        self.artifacts: List[Dict] = json.loads(path.read_text()) if path.exists() else []

    def add(self, artifacts: List[Dict]) -> None:
        self.artifacts.extend(artifacts)
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(self.artifacts, indent=1))
        os.replace(temporary, self.path)

    def query(self, filter_text: str, inputs: Dict[str, List[Dict]]) -> List[Dict]:
        """The newest artifact matching a KFP resolver filter, e.g.
        `schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1`."""
        def fill(match):
            artifacts = inputs.get(match.group(1)) or [{}]
            return str(artifacts[0].get("metadata", {}).get(match.group(2), ""))

        clauses = [clause.split("=", 1) for clause in _PLACEHOLDER.sub(fill, filter_text).split(" AND ")]
        for artifact in reversed(self.artifacts):
            if all(_matches(artifact, key.strip(), value.strip().strip('"')) for key, value in clauses):
                return [artifact]
        return []


def _matches(artifact: Dict, key: str, value: str) -> bool:
    if key == "schema_title":
        return artifact["type"]["schemaTitle"] == value
    if key == "state":
        return value == "LIVE"
    if key == "name":
        return artifact["name"] == value
    if key.startswith("metadata.") and key.endswith("_value"):
        field = key.split(".")[1]
        actual = artifact.get("metadata", {}).get(field)
        return actual is not None and str(actual) in (value, f"{value}.0")
    raise ValueError(f"resolver filter clause {key}={value} is not supported by the local runner")


@dataclasses.dataclass
class CompiledRun:
    """What one local run of a compiled job did: the tasks that ran, and every output artifact."""

    run_id: str
    started_at: str
    executed: List[str] = dataclasses.field(default_factory=list)
    produced: Dict[str, Dict[str, List[Dict]]] = dataclasses.field(default_factory=dict)

    def outputs(self) -> List[RunArtifact]:
        """The outputs as the run summary and the report read them (as ML Metadata gives local runs')."""
        return [RunArtifact(producer=task, kind=artifact["type"]["schemaTitle"].rsplit(".", 1)[-1],
                            uri=artifact["uri"], properties=artifact.get("metadata", {}))
                for task in self.executed for artifacts in self.produced[task].values() for artifact in artifacts]


def spec_path_of(job: Dict) -> Optional[str]:
    """The spec `imagepipe compile` recorded in the job's description, if any."""
    description = job["pipelineSpec"]["pipelineInfo"].get("description", "")
    return description[len(SPEC_NOTE):] if description.startswith(SPEC_NOTE) else None


def start_run() -> CompiledRun:
    """The record of a new local run: its id and start time; run_compiled fills in the rest as tasks finish."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    return CompiledRun(run_id=f"kfp-local-{stamp}", started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def pipeline_root_of(job: Dict) -> str:
    return job["runtimeConfig"]["gcsOutputDirectory"]


def local_work_dir(job: Dict, loaded) -> Path:
    """Where this runner keeps its own files (kfp_local/<run>/<task>/ and the artifact log): the pipeline root
    itself when it is a local path; for an object-store root, <the spec's output_dir>/<pipeline>/ here."""
    root = pipeline_root_of(job)
    return Path(loaded.layout.root) if versioned_store.is_remote(root) else Path(root)


def run_compiled(job: Dict, project_dir: Path, record: CompiledRun, work_dir: Path,
                 progress: Callable[[str], None] = print) -> CompiledRun:
    """Runs every task of the compiled job (the PipelineJob JSON, parsed), adding each finished task and its
    output artifacts to `record`, so that what finished before a TaskFailed is kept. Artifacts go under the
    job's pipeline root; task logs, executor files and the artifact log under `work_dir`."""
    spec = job["pipelineSpec"]
    run = record.run_id.removeprefix("kfp-local-")
    artifact_dir = versioned_store.join(pipeline_root_of(job), "kfp_local", run)
    log = ArtifactLog(work_dir / ARTIFACT_LOG)
    tasks = spec["root"]["dag"]["tasks"]
    produced = record.produced
    for name in task_order(job):
        task = tasks[name]
        component = spec["components"][task["componentRef"]["name"]]
        executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
        inputs = {
            key: produced[ref["taskOutputArtifact"]["producerTask"]].get(ref["taskOutputArtifact"]["outputArtifactKey"], [])
            for key, ref in task.get("inputs", {}).get("artifacts", {}).items()
        }
        if "resolver" in executor:
            produced[name] = {key: log.query(query["filter"], inputs)
                              for key, query in executor["resolver"]["outputArtifactQueries"].items()}
            found = ", ".join(f"{key}: {a[0]['uri'] if a else 'none'}" for key, a in produced[name].items())
            progress(f"{name}: resolved {found}")
            continue
        if "container" not in executor:
            raise TaskFailed(f"task {name}: executor kind {sorted(executor)} is not supported by the local runner", name)
        started = time.time()
        progress(f"{name}: running")
        produced[name] = _run_container_task(name, task, component, executor["container"], inputs,
                                             versioned_store.join(artifact_dir, name),
                                             work_dir / "kfp_local" / run / name, project_dir)
        record.executed.append(name)
        log.add([a for artifacts in produced[name].values() for a in artifacts])
        progress(f"{name}: done in {time.time() - started:.1f} s")
    return record


def _map_path(value, project_dir: Path):
    if isinstance(value, str) and value.startswith(IMAGE_PROJECT_DIR + "/"):
        return str(project_dir) + value[len(IMAGE_PROJECT_DIR):]
    return value


def _run_container_task(name, task, component, container, inputs, artifact_dir: str, task_dir: Path,
                        project_dir: Path) -> Dict:
    outputs = {
        key: [{"name": f"local/{uuid.uuid4().hex}", "type": {"schemaTitle": _schema_title(definition)},
               "uri": versioned_store.join(artifact_dir, key), "metadata": {}}]
        for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items()
    }
    output_file = task_dir / "executor_output.json"
    executor_input = {
        "inputs": {
            "parameterValues": {
                key: _map_path(_parameter_value(key, parameter["runtimeValue"]), project_dir)
                for key, parameter in task.get("inputs", {}).get("parameters", {}).items()
            },
            "artifacts": {key: {"artifacts": artifacts} for key, artifacts in inputs.items() if artifacts},
        },
        "outputs": {"artifacts": {key: {"artifacts": a} for key, a in outputs.items()}, "outputFile": str(output_file)},
    }
    task_dir.mkdir(parents=True, exist_ok=True)
    serialized = json.dumps(executor_input)
    env = dict(os.environ, PYTHONPATH=str(project_dir))
    commands = []
    hook = container.get("lifecycle", {}).get("preCacheCheck")
    if hook:
        commands.append(("driver", hook["command"] + hook.get("args", [])))
    commands.append(("executor", container["command"] + container.get("args", [])))
    for label, command in commands:
        argv = [sys.executable if part == "python" else serialized if part == "{{$}}" else part for part in command]
        log_path = task_dir / f"{label}.log"
        with open(log_path, "w") as log_file:
            result = subprocess.run(argv, cwd=project_dir, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        if result.returncode:
            tail = "\n".join(log_path.read_text().splitlines()[-15:])
            raise TaskFailed(f"task {name} ({label}) exited with {result.returncode}; log {log_path}:\n{tail}", name)
    written = json.loads(output_file.read_text()) if output_file.exists() else {}
    for key, listed in written.get("artifacts", {}).items():
        # The executor reports uri, name and metadata; the type is the one we declared.
        outputs[key] = [{**outputs[key][0], **artifact} for artifact in listed.get("artifacts", [])]
    return outputs


def summarize(loaded, job: Dict, record: CompiledRun, warn: Callable[[str], None] = print) -> RunSummary:
    """The run's summary, as `imagepipe run` gives one (blessing, metrics, pushes, the kept epoch, what
    models.config serves now), and its report under <output_dir>/<pipeline>/reports/<run id>/."""
    layout = OutputLayout(versioned_store.parent(pipeline_root_of(job)), loaded.name)
    summary = RunSummary(pipeline=loaded.name, run_id=record.run_id, executed=sorted(record.executed), cached=[],
                         started_at=record.started_at)
    outputs = record.outputs()
    read_outputs(summary, outputs)
    summary.serving_now = serving_now(layout.serving_dir)
    # The report is for people on this machine: beside the outputs, or in the spec's local outputs when
    # those are in an object store.
    reports_dir = layout.reports_dir if not versioned_store.is_remote(layout.root) else loaded.layout.reports_dir
    try:
        from imagepipe.report import write_report

        summary.report = str(write_report(loaded, summary, outputs, Path(reports_dir)))
    except Exception as exc:  # the run's outcome stands; a report it could not draw is a warning
        warn(f"warning: the run report could not be written: {type(exc).__name__}: {exc}")
    return summary
