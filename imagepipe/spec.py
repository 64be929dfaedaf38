"""The pipeline spec: one YAML file per pipeline, validated before anything runs.

The pydantic models below (with the sections they are built from: ImageSpec in
components/contracts.py, TrainerSpec and the families' hyperparameters in
trainer_modules/config.py) are the single source of truth for every field, its
type, its default and its documentation: schemas/spec.schema.json
(`imagepipe schema`) and the README's field tables (docs/reference.py) are
generated from them.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import List, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from components.contracts import CLASSIFICATION, DeviceCheckSpec, ImageSpec, OutputLayout
from trainer_modules.config import FAMILIES, TRAINER_MODULES, AugmentSpec, TrainerSpec  # noqa: F401 (re-exported for readers)

SPAN_TOKEN = "{SPAN}"
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")  # whole names only: use fullmatch ($ allows a newline)
MAX_BUCKETS = 1000


def module_task(module: str) -> str:
    """classification (image models) or regression, as trainer_modules/config.py declares."""
    return FAMILIES[module].task


class SpecError(ValueError):
    """A spec that cannot run. The message names the file, the field and the fix."""


class _Strict(BaseModel):
    # No unknown fields; no inf or nan (`noise: .inf` passed once).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class GeneratedDataSpec(_Strict):
    kind: Literal["sine"] = Field(description="sine: (x, sin x + noise) with x uniform in [0, 2 pi], as CSV columns x,y.")
    samples: int = Field(1000, ge=10, le=10_000_000, description="How many (x, y) rows to write.")
    noise: float = Field(0.1, ge=0, le=1e6, allow_inf_nan=False,
                         description="Standard deviation of the Gaussian noise added to y.")
    seed: int = Field(1, ge=0, le=2**32 - 1, description="Seed of the generator: another seed, another data drop.")


class LastNSpans(_Strict):
    last_n: int = Field(..., ge=1, description="Train on the newest N spans.")


Spans = Union[Literal["latest", "all"], LastNSpans]


def span_count(spans: Spans) -> int:
    """How many of the newest spans to read: 1 for latest, 0 for all."""
    if isinstance(spans, LastNSpans):
        return spans.last_n
    return 0 if spans == "all" else 1


class DataSpec(_Strict):
    root: str = Field(
        description="Folder of class sub-folders: <root>/<class_name>/<image>. "
        "Relative paths are relative to the spec file's project root (the folder holding pipelines/). "
        "A path component may contain {SPAN} (e.g. data/digits/span-{SPAN}) to select data drops."
    )
    generate: Optional[GeneratedDataSpec] = Field(
        None, description="Generated (not image) data: written as CSV into data.root when missing."
    )
    test_buckets: int = Field(0, ge=0, le=MAX_BUCKETS, description="Hash buckets of a held-out test split (0 = none).")
    unlabeled_dir: str = Field(
        "unlabeled", description="Sub-folder of unlabelled images; never treated as a class."
    )
    spans: Spans = Field(
        "latest", description="With {SPAN} in data.root: which data drops one run trains on. `latest`, "
        "`all`, or `{last_n: N}` (the newest N spans). Ignored without {SPAN}.",
    )
    allow_class_changes: bool = Field(
        False, description="With {SPAN}: let a span's class folders differ from the previous span's (the label "
        "indices then change; the run stops otherwise).",
    )
    labels_per_class: Optional[int] = Field(
        None, ge=1, description="Keep only this many labels per class in the train split (chosen by a seeded hash of "
        "the path); the rest of the train split becomes unlabelled, the eval split keeps all its labels. For "
        "semi-supervised training (trainer.module: mixmatch) and its supervised baseline on the same labels.",
    )
    labels_seed: int = Field(0, description="Seed of the hash that picks which labels data.labels_per_class keeps.")
    train_buckets: int = Field(4, ge=1, le=MAX_BUCKETS, description="Hash buckets of the train split (by relative path).")
    eval_buckets: int = Field(1, ge=1, le=MAX_BUCKETS, description="Hash buckets of the eval split (by relative path).")


class EvaluationSpec(_Strict):
    min_accuracy: float = Field(0.9, ge=0, le=1, description="Classifiers: eval accuracy a model needs to be blessed.")
    max_accuracy_drop: float = Field(
        0.0, ge=0, le=1,
        description="Classifiers: how much lower than the latest blessed model's accuracy a new model may be (absolute).",
    )
    max_mean_absolute_error: Optional[float] = Field(
        None, gt=0, description="Regressors: the eval mean absolute error a model must not exceed to be blessed."
    )
    max_mean_absolute_error_increase: float = Field(
        0.0, ge=0, description="Regressors: how much higher than the latest blessed model's error a new model's may be."
    )


class EdgeSpec(_Strict):
    representative_samples: int = Field(200, ge=1, description="Train-split samples that calibrate int8 quantization.")
    max_int8_degradation: float = Field(
        0.01, ge=0, description="How much worse the int8 model may be than the float one: accuracy (0.01 = 1 point) "
        "for classifiers, mean absolute error for regressors. Measured on the eval split in TFLite Micro.",
    )
    flash_budget_bytes: int = Field(1 << 20, ge=1, description="Device flash for the model: the int8 .tflite must fit.")
    ram_budget_bytes: int = Field(256 << 10, ge=1, description="Device RAM for the tensor arena, measured in TFLite Micro "
                                  "(with `device`: the arena and other static RAM of a minimal firmware).")
    device: Optional[DeviceCheckSpec] = Field(
        None, description="Measure on the TFLite Micro C++ library for a target: bit-exact golden vectors, the "
        "device's arena, flash and RAM, recorded in the manifest and used by the budgets.")


class PushSpec(_Strict):
    serving: bool = Field(True, description="Push blessed models to outputs/<pipeline>/serving/.")
    edge: Optional[EdgeSpec] = Field(
        None, description="Also push float and int8 TFLite models and a microcontroller bundle to outputs/<pipeline>/edge/."
    )

    @model_validator(mode="after")
    def _somewhere(self) -> "PushSpec":
        # Without a target a blessed model would go nowhere and the run could only report "not pushed".
        if not self.serving and self.edge is None:
            raise ValueError("push.serving is false and there is no push.edge: a blessed model would go nowhere; "
                             "fix: set push.serving: true, or add a push.edge section")
        return self


class BeamSpec(_Strict):
    direct_num_workers: int = Field(0, ge=0, description="runner beam: DirectRunner worker processes; 0 = one per core.")
    job_endpoint: Optional[str] = Field(
        None, description="runner portable: the Beam Job API endpoint every component's Beam job is submitted to "
        "(host:port), e.g. a Flink or Spark job server, or Beam's local job service.")
    environment_type: Literal["EXTERNAL", "DOCKER", "PROCESS", "LOOPBACK"] = Field(
        "EXTERNAL", description="runner portable: where the SDK workers run. EXTERNAL: a worker pool you started "
        "(beam.environment_config = its host:port); DOCKER: the SDK image in beam.environment_config (Beam's "
        "Python SDK image with this project installed: the workers import its components).")
    environment_config: Optional[str] = Field(
        None, description="runner portable: the worker pool's host:port (EXTERNAL) or the SDK image (DOCKER).")
    pipeline_args: List[str] = Field(
        default_factory=list,
        description="Passed to every component's Beam job unchanged, after imagepipe's defaults, so they win "
        "(e.g. --runner=FlinkRunner --flink_master=host:8081, or Dataflow's options).",
    )

    @field_validator("job_endpoint")
    @classmethod
    def _host_port(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not re.fullmatch(r"[\w.\-\[\]:]+:\d{1,5}", value):
            raise ValueError(f"{value!r} is not host:port (e.g. localhost:8099)")
        return value


def check_portable(beam: BeamSpec) -> None:
    """runner portable needs a job endpoint, and a worker pool or image unless the workers run in the launcher."""
    if not beam.job_endpoint:
        raise ValueError("runner portable needs beam.job_endpoint; fix: set it to the job server's host:port "
                         "(e.g. localhost:8099 for `python -m apache_beam.runners.portability.local_job_service_main "
                         "--port 8099`, or a Flink/Spark job server)")
    if beam.environment_type in ("EXTERNAL", "DOCKER") and not beam.environment_config:
        example = "localhost:50000 (a worker pool)" if beam.environment_type == "EXTERNAL" else "the project's image"
        raise ValueError(f"beam.environment_type {beam.environment_type} needs beam.environment_config; fix: set it "
                         f"to {example}")


class NotifySpec(_Strict):
    webhook: str = Field(..., description="URL that receives the run's JSON summary (POST) on every outcome.")
    timeout_seconds: float = Field(10, gt=0, le=300, description="How long to wait for the webhook.")

    @field_validator("webhook")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL (e.g. https://hooks.example.com/imagepipe)")
        return value


class KubeflowSpec(_Strict):
    image: str = Field(..., description="Container image every compiled task runs (built from the Dockerfile), "
                       "e.g. us-docker.pkg.dev/my-project/ml/imagepipe:1.0.")
    output_dir: str = Field(..., description="What outputs/ is for local runs, as the tasks' containers see it: "
                            "pipeline root <output_dir>/<pipeline>/tfx, pushes to <output_dir>/<pipeline>/serving "
                            "and /edge. An object-store URI (gs://bucket/imagepipe, s3://bucket/imagepipe: "
                            "versions are published without rename, the record last) or an absolute path in "
                            "the container (a mounted volume).")

    @field_validator("output_dir")
    @classmethod
    def _uri_or_absolute_path(cls, value: str) -> str:
        if "://" in value:
            if not re.match(r"^(gs|s3)://[^/\s]+", value):
                raise ValueError(f"{value!r}: only gs:// and s3:// object stores are supported (e.g. "
                                 "gs://my-bucket/imagepipe)")
        elif not value.startswith("/"):
            raise ValueError(f"{value!r} must be an object-store URI (gs://my-bucket/imagepipe) or an absolute "
                             "path in the container (e.g. /mnt/imagepipe/outputs)")
        return value
    data_root: Optional[str] = Field(None, description="data.root as the cluster sees it (may contain {SPAN}); "
                                     "default: data.root resolved on this machine.")


class Spec(_Strict):
    pipeline: str = Field(..., description="Pipeline name: lower-case letters, digits, '-' and '_'.")
    description: str = Field("", description="Free text, for people.")
    output_dir: str = Field("outputs", description="Outputs go to <output_dir>/<pipeline>/: a file-system path "
                            "(ML Metadata and the run records are local files; a compiled Kubeflow job's outputs "
                            "can be in an object store, kubeflow.output_dir).")
    data: DataSpec
    image: Optional[ImageSpec] = Field(None, description="Input images: required for image models.")
    trainer: TrainerSpec = Field(default_factory=TrainerSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    push: PushSpec = Field(default_factory=PushSpec)
    runner: Literal["local", "beam", "portable"] = Field(
        "local", description="local: LocalDagRunner; beam: BeamDagRunner, the components' Beam jobs on the "
        "DirectRunner in multi-processing mode (or wherever beam.pipeline_args point); portable: LocalDagRunner, "
        "every component's Beam job submitted to beam.job_endpoint (Beam's portable runner: the path Flink, "
        "Spark and Dataflow Runner v2 take), SDK workers as beam.environment_type says."
    )
    beam: BeamSpec = Field(default_factory=BeamSpec)
    notify: Optional[NotifySpec] = Field(None, description="Post each run's JSON summary to a webhook.")
    kubeflow: Optional[KubeflowSpec] = Field(None, description="Where `imagepipe compile --target kubeflow` points "
                                             "the compiled pipeline.")

    @field_validator("output_dir")
    @classmethod
    def _local_output_dir(cls, value: str) -> str:
        if "://" in value:
            raise ValueError(f"{value!r}: local runs keep their outputs on a file system (ML Metadata is a SQLite "
                             "file); fix: a local or mounted path here, and the object store in kubeflow.output_dir "
                             "for a compiled Kubeflow job")
        return value

    @field_validator("pipeline")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not NAME_PATTERN.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a safe pipeline name; use 1-63 lower-case letters, digits, '-' or '_' "
                "(it becomes a folder name under the output directory)"
            )
        return value

    @model_validator(mode="after")
    def _portable_has_an_endpoint(self) -> "Spec":
        if self.runner == "portable":
            check_portable(self.beam)
        return self

    @model_validator(mode="after")
    def _data_root_has_at_most_one_span(self) -> "Spec":
        if self.data.root.count(SPAN_TOKEN) > 1:
            raise ValueError("data.root may contain {SPAN} once")
        return self

    @property
    def task(self) -> str:
        """classification (image models) or regression, as the trainer module declares."""
        return module_task(self.trainer.module)

    @model_validator(mode="after")
    def _sections_fit_the_task(self) -> "Spec":
        if self.task == CLASSIFICATION:
            if self.image is None:
                raise ValueError(f"trainer.module {self.trainer.module} is an image model: add an `image` section "
                                 "(height, width, channels)")
            if self.data.generate is not None:
                raise ValueError("data.generate makes tabular data; image models need image folders in data.root")
        else:
            if self.data.generate is None:
                raise ValueError(f"trainer.module {self.trainer.module} needs data.generate (e.g. kind: sine)")
            if self.evaluation.max_mean_absolute_error is None:
                raise ValueError(f"trainer.module {self.trainer.module} is a regressor: set "
                                 "evaluation.max_mean_absolute_error")
        return self


class LoadedSpec(BaseModel):
    """A validated spec together with where it came from and its resolved paths."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    spec: Spec
    path: Path
    project_root: Path

    @property
    def name(self) -> str:
        return self.spec.pipeline

    def resolve(self, path: str) -> Path:
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else (self.project_root / candidate)

    @property
    def output_dir(self) -> Path:
        return Path(self.layout.root)

    @property
    def data_root(self) -> Path:
        return self.resolve(self.spec.data.root)

    @property
    def layout(self) -> OutputLayout:
        """Where this pipeline's outputs go: <output_dir>/<pipeline>/..."""
        return OutputLayout.of(self.resolve(self.spec.output_dir), self.spec.pipeline)


def _field_path(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _fix_for(error: dict) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "remove it, or check its spelling against schemas/spec.schema.json"
    if kind == "missing":
        return "add it"
    if kind.startswith(("int_", "float_", "bool_", "string_", "dict_", "model_")):
        return f"give a value of the right type (got {error.get('input')!r})"
    if kind.startswith(("greater_than", "less_than")):
        return f"use a value in range (got {error.get('input')!r})"
    if kind == "literal_error":
        return f"use one of the allowed values (got {error.get('input')!r})"
    return "see schemas/spec.schema.json"


def format_validation_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: invalid pipeline spec ({error.error_count()} problem(s))"]
    for item in error.errors():
        message = item["msg"]
        fix = "" if "fix:" in message else f"; fix: {_fix_for(item)}"  # our validators name their own fix
        lines.append(f"  - field `{_field_path(item['loc'])}`: {message}{fix}")
    return "\n".join(lines)


def find_project_root(spec_path: Path) -> Path:
    """Specs live in <project>/pipelines/; relative paths in a spec are relative to <project>."""
    spec_dir = spec_path.resolve().parent
    return spec_dir.parent if spec_dir.name == "pipelines" else spec_dir


MAX_SPEC_BYTES = 1 << 20


class _SpecLoader(yaml.SafeLoader):
    """safe_load, less two traps: a key given twice (the second `trainer:` silently replaced the first),
    and aliases (`*name`), which a spec never needs and which let 1 KB of YAML expand to gigabytes."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, f"an alias (*{event.anchor}) at line {event.start_mark.line + 1}: specs do not use "
                "YAML anchors and aliases; write the value out", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"`{key}` is given twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1}); "
                    "the second would silently replace the first", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_spec(path: str | Path, check_paths: bool = True) -> LoadedSpec:
    """Reads, validates and resolves a spec; raises SpecError with a fix-it message."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such spec file; fix: pass the path of a YAML spec such as pipelines/digits.yaml")
    if path.stat().st_size > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: {path.stat().st_size:,} bytes; a spec is a few hundred bytes (at most "
                        f"{MAX_SPEC_BYTES:,}); fix: pass the spec, not a data file")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_SpecLoader)  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); fix: save the spec as UTF-8") \
            from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot be read ({exc.strerror}); fix: check its permissions") from None
    except yaml.MarkedYAMLError as exc:
        where = f"line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}" if exc.problem_mark else ""
        raise SpecError(f"{path}: not valid YAML at {where}: {exc.problem or exc.context}; fix: correct the YAML there") \
            from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}; fix: correct the YAML") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a spec is a YAML mapping of fields (pipeline, data, image, ...); fix: see pipelines/digits.yaml")
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(format_validation_error(path, exc)) from exc
    loaded = LoadedSpec(spec=spec, path=path, project_root=find_project_root(path))
    check_output_dir(loaded)
    if check_paths:
        check_data_root(loaded)
        check_device_source(loaded)
    return loaded


def check_device_source(loaded: LoadedSpec) -> None:
    edge = loaded.spec.push.edge
    if edge and edge.device and not loaded.resolve(edge.device.tflm_source).exists():
        raise SpecError(f"{loaded.path}: field `push.edge.device.tflm_source`: {loaded.resolve(edge.device.tflm_source)} "
                        "does not exist; fix: point it at an unpacked tflite-micro tree with its third-party "
                        "downloads (or its .tar.gz), or remove push.edge.device")


def check_data_root(loaded: LoadedSpec) -> None:
    root = loaded.spec.data.root
    if loaded.spec.data.generate is not None:
        return  # written by `imagepipe run` when missing
    if SPAN_TOKEN in root:
        base = loaded.resolve(root.split(SPAN_TOKEN)[0]).parent if not root.startswith(SPAN_TOKEN) else loaded.project_root
        if not base.is_dir():
            raise SpecError(
                f"{loaded.path}: field `data.root`: folder {base} (the part before {{SPAN}}) does not exist; "
                "fix: create it, or point data.root at your image folders"
            )
        return
    data_root = loaded.data_root
    if not data_root.is_dir():
        # The shipped data sets: name the command that writes them.
        shipped = next((name for name in ("fashion-mnist", "digits", "photos") if name in root), None)
        hint = f" (run `imagepipe data {shipped} --out {root}` to write it)" if shipped else ""
        raise SpecError(
            f"{loaded.path}: field `data.root`: folder {data_root} does not exist; "
            f"fix: point data.root at a folder of class sub-folders{hint}"
        )
    from components.image_example_gen.folders import ImageFolderError, scan_class_folders

    try:
        classes, _, files_by_class, _ = scan_class_folders(str(data_root), loaded.spec.data.unlabeled_dir)
    except (ImageFolderError, OSError) as exc:
        raise SpecError(
            f"{loaded.path}: field `data.root`: {exc}; fix: put each class's images in its own sub-folder, "
            "<root>/<class_name>/<image>"
        ) from None
    # Regular files only: a folder of devices or pipes (data.root: /dev) has "classes" but no images.
    with_files = [name for name in classes if any((data_root / f).is_file() for f in files_by_class[name])]
    if len(with_files) < 2 and loaded.spec.task == CLASSIFICATION:
        found = f"one ({with_files[0]})" if with_files else "none"
        raise SpecError(
            f"{loaded.path}: field `data.root`: {data_root} has {found} class folder with image files; a classifier "
            "needs at least two; fix: add a folder of images for each class, <root>/<class_name>/<image>"
        )


def check_output_dir(loaded: LoadedSpec) -> None:
    """Outputs inside the data would become a class folder, and every run would retrain on its own outputs."""
    if loaded.spec.data.generate is not None:
        return
    data_root = loaded.resolve(loaded.spec.data.root.split(SPAN_TOKEN)[0]).resolve()
    output_dir = loaded.resolve(loaded.spec.output_dir).resolve()
    if output_dir == data_root or data_root in output_dir.parents:
        raise SpecError(
            f"{loaded.path}: field `output_dir`: {output_dir} is inside data.root ({data_root}): it would become a "
            "class folder and every run would train on its own outputs; fix: put output_dir outside the data"
        )


def json_schema() -> dict:
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "imagepipe pipeline spec"
    return schema
