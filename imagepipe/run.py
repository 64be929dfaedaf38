"""Runs a spec's pipeline: the lock, the runner, progress on the terminal, the full log in a file;
then the summary read back from ML Metadata (imagepipe/results.py) and the report (imagepipe/report.py)."""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from components.contracts import RUN_LOCK_FILE, OutputLayout
from imagepipe.describe import shown_path
from imagepipe.results import RunSummary, latest_run, run_output_artifacts, serving_now, summarize_run
from imagepipe.spec import LoadedSpec

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def schema_file(loaded: LoadedSpec) -> Path:
    """The tf.Example schema the ExampleValidator checks against."""
    generated = loaded.spec.data.generate
    return SCHEMAS / (f"{generated.kind}_examples.pbtxt" if generated else "image_examples.pbtxt")


class ProgressHandler(logging.Handler):
    """Turns TFX's and the Trainer's log lines into short progress events."""

    def __init__(self, emit_progress: Callable[[str], None]):
        super().__init__(level=logging.INFO)
        self._emit_progress = emit_progress
        self._running: Optional[str] = None

    def _component(self, name: str) -> None:
        # TFX announces a component more than once (its launcher, then its driver): show it once.
        if name != self._running:
            self._running = name
            self._emit_progress(f"running {name}")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a malformed third-party log line must not break the run
            return
        if message.startswith("Component ") and message.endswith(" is running."):
            self._component(message[len("Component "):-len(" is running.")])
        elif message.startswith("Running launcher for node_info"):  # BeamDagRunner's form
            node = re.search(r'^  id: "([^"]+)"', message, re.MULTILINE)
            if node:
                self._component(node.group(1))
        elif message.startswith("A cached execution"):
            self._emit_progress("  reused the cached result")
        elif message.startswith("imagepipe "):  # our components' and trainers' own progress lines
            self._emit_progress("  " + message[len("imagepipe "):])


def beam_pipeline_args(loaded: LoadedSpec, runner: str) -> List[str]:
    """local: each component's Beam job in-process; beam: DirectRunner worker processes, one per core
    by default; portable: Beam's PortableRunner, jobs to beam.job_endpoint. The spec's beam.pipeline_args
    come last, so they override these."""
    beam = loaded.spec.beam
    if runner == "portable":
        defaults = ["--runner=PortableRunner", f"--job_endpoint={beam.job_endpoint}",
                    f"--environment_type={beam.environment_type}"]
        if beam.environment_config:
            defaults.append(f"--environment_config={beam.environment_config}")
    elif runner == "beam":
        workers = beam.direct_num_workers or os.cpu_count() or 1
        defaults = ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    else:
        # None: Beam's defaults are one in-process worker. Any argument at all makes TFX copy its own
        # installation into an sdist for every Beam component (tfx.utils.dependency_utils), 2-5 s each,
        # for remote workers that a local run does not have.
        defaults = []
    return defaults + list(beam.pipeline_args)


def dag_runner(runner: str):
    # portable: the components run here (LocalDagRunner); their Beam jobs go to the job endpoint.
    if runner == "beam":
        from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

        return BeamDagRunner()
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    return LocalDagRunner()


class PipelineBusy(RuntimeError):
    """Another run of the same pipeline holds the output directory."""


@contextlib.contextmanager
def run_lock(output_dir: Path):
    """One run of a pipeline at a time: a second one would race the first on
    ML Metadata and on the version numbers of serving/ and edge/. The lock is
    the kernel's (flock), so a killed run never leaves it behind."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / RUN_LOCK_FILE, "a+") as handle:
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

    layout = loaded.layout
    with run_lock(Path(layout.root)):
        return _run_locked(loaded, layout, runner, progress)


def _run_locked(loaded: LoadedSpec, layout: OutputLayout, runner: str, progress: Callable[[str], None]) -> RunSummary:
    from absl import logging as absl_logging

    from imagepipe.pipeline import create_pipeline

    generated = loaded.spec.data.generate
    if generated:
        from imagepipe.datasets import DATASETS

        DATASETS[generated.kind](loaded.data_root, generated.samples, generated.noise, generated.seed)
    pipeline = create_pipeline(
        spec=loaded.spec,
        pipeline_root=layout.pipeline_root,
        metadata_path=layout.metadata_path,
        data_root=str(loaded.data_root),
        schema_file=str(schema_file(loaded)),
        serving_base_dir=layout.serving_base_dir,
        edge_base_dir=layout.edge_base_dir,
        beam_pipeline_args=beam_pipeline_args(loaded, runner),
        tflm_source=str(loaded.resolve(edge.device.tflm_source)) if (edge := loaded.spec.push.edge) and edge.device else None,
    )
    # The full TFX/Beam/TensorFlow log goes to a file; the terminal gets progress.
    log_path = Path(layout.logs_dir) / f"run-{time.strftime('%Y%m%dT%H%M%S')}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(log_path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root, tf_logger = logging.getLogger(), logging.getLogger("tensorflow")
    saved = (root.handlers[:], root.level, tf_logger.handlers[:], tf_logger.propagate, absl_logging.get_verbosity())
    root.handlers = [file_handler, ProgressHandler(progress)]
    root.setLevel(logging.INFO)
    tf_logger.handlers, tf_logger.propagate = [], True
    absl_logging.set_verbosity(absl_logging.INFO)
    logging.captureWarnings(True)
    progress(f"runner: {runner}, log: {shown_path(log_path)}")
    try:
        try:
            dag_runner(runner).run(pipeline)
        except Exception as exc:
            raise RunFailed(f"{exc} (full log: {log_path})") from exc
        # Reading the run back logs too (ML Metadata, the report's TFMA): into the file, not the terminal.
        store, run = latest_run(loaded.name, Path(layout.metadata_path))
        summary = summarize_run(store, run, loaded.name)
        summary.serving_now = serving_now(Path(layout.serving_dir))
        try:
            from imagepipe.report import write_report

            summary.report = str(write_report(loaded, summary, run_output_artifacts(store, run),
                                              Path(layout.reports_dir)))
        except Exception as exc:  # the run's outcome stands; a report it could not draw is a warning
            logging.getLogger(__name__).exception("report failed")
            progress(f"warning: the run report could not be written: {type(exc).__name__}: {exc}")
    finally:
        root.handlers, root.level, tf_logger.handlers, tf_logger.propagate, verbosity = saved
        absl_logging.set_verbosity(verbosity)
        file_handler.close()
    return summary


class RunFailed(RuntimeError):
    """A component failed; the message ends with the log file's path."""




def run_in_child(spec_path: str, runner: Optional[str], show_progress: bool, outcome_path: str) -> None:
    """`imagepipe run`'s worker process: runs the pipeline and writes its outcome (the summary, or the
    failure) as JSON to `outcome_path`. The CLI supervises it, so that a component that crashes the
    process (a segfault, the out-of-memory killer) still ends with a "run failed" line, the JSON line
    and the webhook, naming the component."""
    from rich.console import Console

    from imagepipe.spec import load_spec

    console = Console(stderr=True, soft_wrap=True, highlight=False)
    progress = console.print if show_progress else (lambda message: None)
    loaded = load_spec(spec_path)
    try:
        summary = run_pipeline(loaded, progress=progress, runner=runner)
        outcome = {**summary.to_dict(), "status": summary.status}
    except PipelineBusy as exc:
        outcome = {"pipeline": loaded.name, "status": "busy", "error": str(exc)}
    except Exception as exc:  # reported by the CLI with the documented exit code
        outcome = {"pipeline": loaded.name, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    Path(outcome_path).write_text(json.dumps(outcome))
    # The outcome is written and the run's log closed: end the process here. Tearing the interpreter
    # down (TensorFlow's, Beam's and TFMA's objects) took another 4-6 s after every run.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def died_outcome(loaded: LoadedSpec, exitcode: int) -> Dict:
    """The outcome of a run whose process died before it could write one: which component was running."""
    import signal

    reason = (f"signal {-exitcode} ({signal.Signals(-exitcode).name})" if exitcode < 0 else f"exit status {exitcode}")
    running: List[str] = []
    try:
        store, run = latest_run(loaded.name, Path(loaded.layout.metadata_path))
        running = summarize_run(store, run, loaded.name).incomplete
    except Exception:  # no run recorded yet: it died before the first component
        pass
    where = f" in {', '.join(running)}" if running else ""
    logs = sorted(Path(loaded.layout.logs_dir).glob("run-*.log"))
    log = f"; full log: {shown_path(logs[-1])}" if logs else ""
    return {"pipeline": loaded.name, "status": "failed", "failed": running,
            "error": f"the run's process died{where} ({reason}){log}"}
