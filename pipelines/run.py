"""Runs a spec's pipeline and reports what happened, read back from MLMD.

Exit codes (also in the README):
  0  a blessed model is being served (pushed now, or already pushed)
  1  the run failed
  2  the spec or the command line is invalid
  3  the run succeeded but the model was not pushed everywhere the spec asks:
     not blessed (nothing pushed), or blessed but the int8 edge model missed
     its accuracy tolerance or device budget (the JSON status says which)
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from pipelines.spec import LoadedSpec

EXIT_PUSHED = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_NOT_BLESSED = 3

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def schema_file(loaded: LoadedSpec) -> Path:
    """The tf.Example schema the ExampleValidator checks against."""
    generated = loaded.spec.data.generate
    return SCHEMAS / (f"{generated.kind}_examples.pbtxt" if generated else "image_examples.pbtxt")


@dataclasses.dataclass
class Paths:
    output_dir: Path
    pipeline_root: Path
    metadata_path: Path
    serving_base_dir: Path
    edge_base_dir: Path

    @classmethod
    def for_spec(cls, loaded: LoadedSpec) -> "Paths":
        out = loaded.output_dir
        return cls(
            output_dir=out,
            pipeline_root=out / "tfx",
            metadata_path=out / "metadata.sqlite",
            serving_base_dir=out / "serving" / loaded.name,
            edge_base_dir=out / "edge" / loaded.name,
        )


@dataclasses.dataclass
class RunSummary:
    pipeline: str
    run_id: str
    executed: List[str]
    cached: List[str]
    failed: List[str] = dataclasses.field(default_factory=list)
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

    @property
    def status(self) -> str:
        """pushed: every push target the spec names holds the model; not_blessed: none
        does; edge_not_pushed: blessed, but the int8 model missed its accuracy or device budget;
        failed: a component failed (only in `imagepipe runs`: `run` reports failures itself)."""
        if self.failed:
            return "failed"
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


def summarize_latest_run(pipeline_name: str, metadata_path: Path) -> RunSummary:
    runs, store = _runs(pipeline_name, metadata_path)
    return summarize_run(store, runs[-1], pipeline_name)


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


def run_output_artifacts(store, run) -> List[tuple]:
    """(producing node, artifact type name, artifact) of every output of a run, cached ones included."""
    executions = store.get_executions_by_context(run.id)
    node_of = _nodes_of(store, executions)
    events = store.get_events_by_execution_ids([e.id for e in executions])
    producer_of = {ev.artifact_id: node_of.get(ev.execution_id) for ev in events if ev.type in (ev.OUTPUT, ev.DECLARED_OUTPUT)}
    artifact_types = {t.id: t.name for t in store.get_artifact_types()}
    return [(producer_of.get(a.id), artifact_types.get(a.type_id), a) for a in store.get_artifacts_by_id(list(producer_of))]


def summarize_run(store, run, pipeline_name: str) -> RunSummary:
    executions = store.get_executions_by_context(run.id)
    node_of = _nodes_of(store, executions)
    summary = RunSummary(
        pipeline=pipeline_name,
        run_id=run.name,
        executed=sorted(node_of[e.id] for e in executions if e.last_known_state == e.COMPLETE),
        cached=sorted(node_of[e.id] for e in executions if e.last_known_state == e.CACHED),
        failed=sorted(node_of[e.id] for e in executions if e.last_known_state == e.FAILED),
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.create_time_since_epoch / 1000)),
    )
    # A cached Pusher means this exact model was pushed by an earlier run.
    summary.already_pushed = "Pusher" in summary.cached
    for producer, kind, artifact in run_output_artifacts(store, run):
        props = artifact.custom_properties
        if kind == "ModelBlessing":
            summary.blessed = props["blessed"].int_value == 1 if "blessed" in props else None
        elif kind == "ModelEvaluation":
            accuracies = _metric_by_model(artifact.uri, "sparse_categorical_accuracy")
            summary.accuracy = accuracies.get("candidate")
            summary.baseline_accuracy = accuracies.get("baseline")
            errors = _metric_by_model(artifact.uri, "mean_absolute_error")
            summary.mean_absolute_error = errors.get("candidate")
            summary.baseline_mean_absolute_error = errors.get("baseline")
            summary.validation_failures = _validation_failures(artifact.uri)
        elif kind == "PushedModel" and producer == "EdgePusher":
            summary.edge = _edge_summary(artifact)
        elif kind == "PushedModel":
            summary.pushed = props["pushed"].int_value == 1 if "pushed" in props else False
            summary.already_pushed = summary.already_pushed or "already_pushed" in props
            if "pushed_version" in props:
                summary.pushed_version = int(props["pushed_version"].string_value)
                summary.pushed_destination = props["pushed_destination"].string_value
        elif kind == "Examples":
            span = artifact.properties.get("span") or props.get("span")
            if span is not None:
                summary.span = span.int_value
            if "files_ingested" in props:
                summary.files_ingested = props["files_ingested"].int_value
                summary.files_skipped = props["files_skipped"].int_value
    return summary


def _edge_summary(artifact) -> Dict:
    props = artifact.custom_properties
    report_path = Path(artifact.uri) / "edge_report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    return {
        "pushed": "pushed" in props and props["pushed"].int_value == 1,
        "version": props["pushed_version"].int_value if "pushed_version" in props else None,
        "destination": props["pushed_destination"].string_value if "pushed_destination" in props else None,
        **report,
    }


class ProgressHandler(logging.Handler):
    """Turns TFX's and the Trainer's log lines into short progress events."""

    def __init__(self, emit_progress: Callable[[str], None]):
        super().__init__(level=logging.INFO)
        self._emit_progress = emit_progress

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a malformed third-party log line must not break the run
            return
        if message.startswith("Component ") and message.endswith(" is running."):
            self._emit_progress(f"running {message[len('Component '):-len(' is running.')]}")
        elif message.startswith("Running launcher for node_info"):  # BeamDagRunner's form
            node = re.search(r'^  id: "([^"]+)"', message, re.MULTILINE)
            if node:
                self._emit_progress(f"running {node.group(1)}")
        elif message.startswith("A cached execution"):
            self._emit_progress("  reused the cached result")
        elif message.startswith("imagepipe "):  # our components' and trainers' own progress lines
            self._emit_progress("  " + message[len("imagepipe "):])


def beam_pipeline_args(loaded: LoadedSpec, runner: str) -> List[str]:
    """local: each component's Beam job in-process; beam: DirectRunner worker processes, one per core
    by default. The spec's beam.pipeline_args come last, so they override these."""
    beam = loaded.spec.beam
    if runner == "beam":
        workers = beam.direct_num_workers or os.cpu_count() or 1
        defaults = ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    else:
        defaults = ["--direct_num_workers=1"]
    return defaults + list(beam.pipeline_args)


def dag_runner(runner: str):
    if runner == "beam":
        from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

        return BeamDagRunner()
    from tfx import v1 as tfx

    return tfx.orchestration.LocalDagRunner()


class PipelineBusy(RuntimeError):
    """Another run of the same pipeline holds the output directory."""


@contextlib.contextmanager
def run_lock(output_dir: Path):
    """One run of a pipeline at a time: a second one would race the first on
    ML Metadata and on the version numbers of serving/ and edge/. The lock is
    the kernel's (flock), so a killed run never leaves it behind."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / ".run.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise PipelineBusy(f"{output_dir}: another run of this pipeline is in progress ({holder}); "
                               "fix: wait for it to finish (or stop it), then run again") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_pipeline(loaded: LoadedSpec, progress: Callable[[str], None] = print, runner: Optional[str] = None) -> RunSummary:
    """Builds the spec's pipeline, runs it with the spec's (or the given) runner, summarises the run.
    Raises PipelineBusy when another run of the pipeline holds its output directory."""
    runner = runner or loaded.spec.runner

    paths = Paths.for_spec(loaded)
    with run_lock(paths.output_dir):
        return _run_locked(loaded, paths, runner, progress)


def _run_locked(loaded: LoadedSpec, paths: Paths, runner: str, progress: Callable[[str], None]) -> RunSummary:
    from absl import logging as absl_logging

    from pipelines.pipeline import create_pipeline

    generated = loaded.spec.data.generate
    if generated:
        from pipelines.datasets import DATASETS

        DATASETS[generated.kind](loaded.data_root, generated.samples, generated.noise, generated.seed)
    pipeline = create_pipeline(
        spec=loaded.spec,
        pipeline_root=str(paths.pipeline_root),
        metadata_path=str(paths.metadata_path),
        data_root=str(loaded.data_root),
        schema_file=str(schema_file(loaded)),
        serving_base_dir=str(paths.serving_base_dir),
        edge_base_dir=str(paths.edge_base_dir),
        beam_pipeline_args=beam_pipeline_args(loaded, runner),
    )
    # The full TFX/Beam/TensorFlow log goes to a file; the terminal gets progress.
    log_path = paths.output_dir / "logs" / f"run-{time.strftime('%Y%m%dT%H%M%S')}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(log_path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root, tf_logger = logging.getLogger(), logging.getLogger("tensorflow")
    saved = (root.handlers[:], root.level, tf_logger.handlers[:], tf_logger.propagate)
    root.handlers = [file_handler, ProgressHandler(progress)]
    root.setLevel(logging.INFO)
    tf_logger.handlers, tf_logger.propagate = [], True
    absl_logging.set_verbosity(absl_logging.INFO)
    logging.captureWarnings(True)
    progress(f"runner: {runner}, log: {log_path}")
    try:
        dag_runner(runner).run(pipeline)
    except Exception as exc:
        raise RunFailed(f"{exc} (full log: {log_path})") from exc
    finally:
        root.handlers, root.level, tf_logger.handlers, tf_logger.propagate = saved
        file_handler.close()
    runs, store = _runs(loaded.name, paths.metadata_path)
    summary = summarize_run(store, runs[-1], loaded.name)
    try:
        from pipelines.report import write_report

        summary.report = str(write_report(loaded, summary, store, runs[-1], paths.output_dir / "reports"))
    except Exception as exc:  # the run's outcome stands; a report it could not draw is a warning
        logging.getLogger(__name__).exception("report failed")
        progress(f"warning: the run report could not be written: {type(exc).__name__}: {exc}")
    return summary


class RunFailed(RuntimeError):
    """A component failed; the message ends with the log file's path."""


def describe(summary: RunSummary) -> str:
    lines = [f"pipeline {summary.pipeline}, run {summary.run_id}: "
             f"{len(summary.executed)} component(s) executed, {len(summary.cached)} reused from cache"]
    if summary.files_ingested is not None:
        lines.append(f"images ingested: {summary.files_ingested}, skipped: {summary.files_skipped}")
    for name, value, baseline_value in (
        ("accuracy", summary.accuracy, summary.baseline_accuracy),
        ("mean absolute error", summary.mean_absolute_error, summary.baseline_mean_absolute_error),
    ):
        if value is not None:
            baseline = f" (baseline {baseline_value:.4f})" if baseline_value is not None else " (no baseline yet)"
            lines.append(f"eval {name}: {value:.4f}{baseline}")
    if summary.pushed and summary.already_pushed:
        lines.append(f"nothing new to push: this model is already version {summary.pushed_version} at {summary.pushed_destination}")
    elif summary.pushed:
        lines.append(f"pushed version {summary.pushed_version} to {summary.pushed_destination}")
    elif summary.blessed is False or not summary.edge:
        lines.append("not blessed, nothing pushed" + (":" if summary.validation_failures else ""))
        lines.extend(f"  - {failure}" for failure in summary.validation_failures)
    if summary.edge and "metric" in summary.edge:
        lines.append(describe_edge(summary.edge))
    if summary.report:
        lines.append(f"report: {summary.report}")
    return os.linesep.join(lines)


def describe_edge(edge: Dict) -> str:
    if "error" in edge:
        return f"edge: not pushed: {edge['error']}"
    metric = edge["metric"]
    numbers = (f"int8 {edge['int8_model_bytes']} bytes (float {edge['float_model_bytes']}), "
               f"arena {edge['arena_bytes']} bytes, {metric.replace('_', ' ')} int8 {edge[f'int8_{metric}']:.4f} "
               f"vs float {edge[f'float_{metric}']:.4f}")
    if edge["pushed"]:
        return f"edge: version {edge['version']} at {edge['destination']}: {numbers}"
    failed = ", ".join(name.replace("_", " ") for name, ok in edge["checks"].items() if not ok)
    return f"edge: not pushed ({failed}): {numbers}"
