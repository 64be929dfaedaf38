"""What a run did, read back from ML Metadata: the RunSummary behind `imagepipe run`'s last lines,
`--json`, the webhook, `imagepipe runs` and the report; and the exit codes it maps to.

Exit codes (also in the README):
  0  a blessed model is being served (pushed now, or already pushed)
  1  the run failed
  2  the spec or the command line is invalid
  3  the run succeeded but the model was not pushed everywhere the spec asks:
     not blessed (nothing pushed), or blessed but the int8 edge model missed
     its accuracy tolerance or device budget (the JSON status says which)
"""
from __future__ import annotations

import dataclasses
import posixpath
import time
from pathlib import Path
from typing import Dict, List, Optional

from components.contracts import (
    CLASSIFICATION,
    EDGE_REPORT_FILE,
    GATED_METRIC,
    REGRESSION,
    TrainingSummary,
    json_exists,
    read_json,
)

EXIT_PUSHED = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_NOT_BLESSED = 3


@dataclasses.dataclass
class RunSummary:
    pipeline: str
    run_id: str
    executed: List[str]
    cached: List[str]
    failed: List[str] = dataclasses.field(default_factory=list)
    incomplete: List[str] = dataclasses.field(default_factory=list)
    started_at: Optional[str] = None
    span: Optional[int] = None
    blessed: Optional[bool] = None
    accuracy: Optional[float] = None
    baseline_accuracy: Optional[float] = None
    mean_absolute_error: Optional[float] = None
    baseline_mean_absolute_error: Optional[float] = None
    validation_failures: List[str] = dataclasses.field(default_factory=list)
    pushed: bool = False
    already_pushed: bool = False
    pushed_version: Optional[int] = None
    pushed_destination: Optional[str] = None
    files_ingested: Optional[int] = None
    files_skipped: Optional[int] = None
    edge: Optional[Dict] = None  # the EdgePusher's numbers and decision, when the spec asks for edge pushes
    report: Optional[str] = None  # reports/<run id>/report.html
    kept_epoch: Optional[int] = None  # the Trainer's choice of weights (image families), and why
    epochs_run: Optional[int] = None
    kept_because: Optional[str] = None
    training_warnings: List[str] = dataclasses.field(default_factory=list)
    serving_now: Optional[Dict] = None  # what models.config serves when the summary is made: {stable, canary}

    @property
    def status(self) -> str:
        """pushed: every push target the spec names holds the model; not_blessed: none
        does; edge_not_pushed: blessed, but the int8 model missed its accuracy or device budget;
        failed: a component failed; incomplete: a component never finished (the process was killed or
        crashed, or the run is still going); both only in `imagepipe runs` (`run` reports its own failures)."""
        if self.failed:
            return "failed"
        if self.incomplete:
            return "incomplete"
        if self.edge is not None and self.blessed and not self.edge.get("pushed"):
            return "edge_not_pushed"
        if self.pushed or (self.edge is not None and self.edge.get("pushed")):
            return "pushed"
        return "not_blessed"

    @property
    def exit_code(self) -> int:
        return EXIT_PUSHED if self.status == "pushed" else EXIT_NOT_BLESSED

    def to_dict(self) -> Dict:
        return dataclasses.asdict(self)


def _metric_by_model(evaluation_uri: str, metric_name: str) -> Dict[str, float]:
    """{'candidate': value, 'baseline': value} of a metric on the overall slice."""
    import tensorflow_model_analysis as tfma

    result: Dict[str, float] = {}
    for metrics in tfma.load_metrics(evaluation_uri):
        if metrics.slice_key.single_slice_keys:
            continue
        for key_and_value in metrics.metric_keys_and_values:
            key = key_and_value.key
            if key.name == metric_name and not key.HasField("sub_key"):
                role = "diff" if key.is_diff else ("baseline" if key.model_name == "baseline" else "candidate")
                result[role] = key_and_value.value.double_value.value
    return result


def _validation_failures(evaluation_uri: str) -> List[str]:
    import tensorflow_model_analysis as tfma

    validation = tfma.load_validation_result(evaluation_uri)
    failures = []
    for failure in validation.metric_validations_per_slice:
        for metric in failure.failures:
            failures.append(
                f"{metric.metric_key.name}{' change' if metric.metric_key.is_diff else ''} = "
                f"{metric.metric_value.double_value.value:.4f} fails {str(metric.metric_threshold).strip().replace(chr(10), ' ')}"
            )
    return failures


def _runs(pipeline_name: str, metadata_path: Path):
    from ml_metadata.metadata_store import metadata_store
    from tfx.orchestration import metadata

    store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(str(metadata_path)))
    runs = sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: (c.create_time_since_epoch, c.id))
    if not runs:
        raise RuntimeError(f"no run of pipeline {pipeline_name} is recorded in {metadata_path}")
    return runs, store


def latest_run(pipeline_name: str, metadata_path: Path):
    """(the metadata store, the newest run's context)."""
    runs, store = _runs(pipeline_name, metadata_path)
    return store, runs[-1]


def summarize_all_runs(pipeline_name: str, metadata_path: Path) -> List[RunSummary]:
    """Every recorded run, oldest first (`imagepipe runs`)."""
    runs, store = _runs(pipeline_name, metadata_path)
    return [summarize_run(store, run, pipeline_name) for run in runs]


def _nodes_of(store, executions) -> Dict[int, str]:
    node_of = {}
    for execution in executions:
        contexts = store.get_contexts_by_execution(execution.id)
        node_of[execution.id] = next((c.name.split(".", 1)[-1] for c in contexts if c.type == "node"), str(execution.id))
    return node_of


@dataclasses.dataclass
class RunArtifact:
    """One output of a run, whichever record it comes from: ML Metadata for local runs, the artifact
    list `imagepipe run-compiled` keeps for compiled Kubeflow jobs."""

    producer: Optional[str]  # the component id, e.g. "EdgePusher"
    kind: Optional[str]  # the TFX type name, e.g. "ModelBlessing"
    uri: str
    properties: Dict[str, object]  # properties and custom properties, as plain values


def _plain_value(value):
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind in ("int_value", "double_value", "string_value") else None


def run_output_artifacts(store, run) -> List[RunArtifact]:
    """Every output of a run recorded in ML Metadata, cached ones included."""
    executions = store.get_executions_by_context(run.id)
    node_of = _nodes_of(store, executions)
    events = store.get_events_by_execution_ids([e.id for e in executions])
    producer_of = {ev.artifact_id: node_of.get(ev.execution_id) for ev in events if ev.type in (ev.OUTPUT, ev.DECLARED_OUTPUT)}
    artifact_types = {t.id: t.name for t in store.get_artifact_types()}
    return [RunArtifact(producer_of.get(a.id), artifact_types.get(a.type_id), a.uri,
                        {key: _plain_value(value) for values in (a.properties, a.custom_properties)
                         for key, value in values.items()})
            for a in store.get_artifacts_by_id(list(producer_of))]


def summarize_run(store, run, pipeline_name: str) -> RunSummary:
    executions = store.get_executions_by_context(run.id)
    node_of = _nodes_of(store, executions)
    summary = RunSummary(
        pipeline=pipeline_name,
        run_id=run.name,
        executed=sorted(node_of[e.id] for e in executions if e.last_known_state == e.COMPLETE),
        cached=sorted(node_of[e.id] for e in executions if e.last_known_state == e.CACHED),
        failed=sorted(node_of[e.id] for e in executions if e.last_known_state == e.FAILED),
        # Still RUNNING once the run is over: the process died (killed, out of memory, a crash).
        incomplete=sorted(node_of[e.id] for e in executions if e.last_known_state in (e.RUNNING, e.NEW)),
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.create_time_since_epoch / 1000)),
    )
    # A cached Pusher means this exact model was pushed by an earlier run.
    summary.already_pushed = "Pusher" in summary.cached
    read_outputs(summary, run_output_artifacts(store, run))
    return summary


def read_outputs(summary: RunSummary, artifacts: List[RunArtifact]) -> None:
    """Fills in what the run's outputs say: blessing, metrics, pushes, the kept epoch, ingest counts."""
    for artifact in artifacts:
        props = artifact.properties
        if artifact.kind == "ModelBlessing":
            summary.blessed = int(props["blessed"]) == 1 if props.get("blessed") is not None else None
        elif artifact.kind == "ModelEvaluation":
            accuracies = _metric_by_model(artifact.uri, GATED_METRIC[CLASSIFICATION])
            summary.accuracy = accuracies.get("candidate")
            summary.baseline_accuracy = accuracies.get("baseline")
            errors = _metric_by_model(artifact.uri, GATED_METRIC[REGRESSION])
            summary.mean_absolute_error = errors.get("candidate")
            summary.baseline_mean_absolute_error = errors.get("baseline")
            summary.validation_failures = _validation_failures(artifact.uri)
        elif artifact.kind == "PushedModel" and artifact.producer == "EdgePusher":
            summary.edge = _edge_summary(artifact)
        elif artifact.kind == "PushedModel":
            summary.pushed = props.get("pushed") is not None and int(props["pushed"]) == 1
            summary.already_pushed = summary.already_pushed or "already_pushed" in props
            if props.get("pushed_version") is not None:
                summary.pushed_version = int(props["pushed_version"])
                summary.pushed_destination = str(props["pushed_destination"])
        elif artifact.kind == "ModelRun":
            training = TrainingSummary.read(artifact.uri)
            if training:
                summary.kept_epoch, summary.epochs_run = training.kept_epoch, training.epochs_run
                summary.kept_because, summary.training_warnings = training.kept_because, training.warnings
        elif artifact.kind == "Examples":
            if props.get("span") is not None:
                summary.span = int(props["span"])
            if props.get("files_ingested") is not None:
                summary.files_ingested = int(props["files_ingested"])
                summary.files_skipped = int(props["files_skipped"])


def serving_now(serving_dir: Path | str) -> Optional[Dict]:
    """{stable, canary} from models.config as it is now (not as a past run left it); None if none."""
    from components import serving_rollout

    try:
        rollout = serving_rollout.read(serving_dir)
    except serving_rollout.RolloutError as exc:
        return {"error": str(exc)}
    return {"stable": rollout.stable, "canary": rollout.canary} if rollout else None


def _edge_summary(artifact: RunArtifact) -> Dict:
    props = artifact.properties
    report_path = posixpath.join(artifact.uri, EDGE_REPORT_FILE)
    report = read_json(report_path) if json_exists(report_path) else {}
    return {
        "pushed": props.get("pushed") is not None and int(props["pushed"]) == 1,
        "version": int(props["pushed_version"]) if props.get("pushed_version") is not None else None,
        "destination": str(props["pushed_destination"]) if props.get("pushed_destination") is not None else None,
        **report,
    }
