"""The contracts between stages, in one place: what one stage writes and the next one reads.

No imports beyond the standard library and pydantic: the CLI, Beam workers, the
Trainer and the EdgePusher all import this module, and none of them should pay
for another stage's dependencies. docs/contracts.md describes the same
contracts for users.
"""
from __future__ import annotations

import dataclasses
import json
import os
import posixpath
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from components import versioned_store

# --- tf.Example features written by ImageExampleGen -------------------------------------------
IMAGE_KEY = "image"            # encoded bytes, as read from the file (EXIF-rotated images re-encoded as PNG)
LABEL_KEY = "label"            # int64 index into the sorted class list; UNLABELLED for unlabelled images
LABEL_NAME_KEY = "label_name"  # the class folder name ("" for unlabelled)
HEIGHT_KEY, WIDTH_KEY, CHANNELS_KEY = "height", "width", "channels"
FILENAME_KEY = "filename"      # path relative to the data root
FORMAT_KEY = "format"          # JPEG, PNG or GIF, as stored
UNLABELLED = -1

# --- limits on one image, the same at ingestion and in the serving graph (decompression bombs) ----
MAX_PIXELS = 50_000_000        # an 8000x6000 photo passes, a 10000x10000 image does not
MAX_SIDE = 65_535              # JPEG's own limit; TensorFlow's PNG decoder refuses wider images
MAX_FILE_BYTES = 256 << 20     # read no more than this of one file (a 50-megapixel PNG fits)

# --- files ImageExampleGen leaves beside its examples and in its ingest report --------------
LABEL_NAMES_FILE = "label_names.json"    # in the Examples artifact: the sorted class names
INGEST_REPORT_FILE = "ingest_report.json"
SKIPPED_FILES_FILE = "skipped_files.jsonl"

# --- what the Trainer leaves for the EdgePusher, beside the serving model ---------------------
EDGE_EXPORT_DIR = "Format-Edge"          # sibling of Format-Serving in the Model artifact
EDGE_EXPORT_MODEL = "model"              # the bare Keras model, batch 1, float inputs
EDGE_EXPORT_INPUTS = "inputs"            # SavedModel: serialized tf.Examples -> {"inputs", "label"}
EDGE_EXPORT_INFO = "edge.json"           # EdgeInfo below
TRAINING_HISTORY_FILE = "history.json"   # in model_run: per-epoch metrics of the kept model
TRAINING_SUMMARY_FILE = "training_summary.json"  # in model_run: TrainingSummary below

# --- the serving store: our record of a push, inside each version (written last) ---------------
SERVING_PUSH_RECORD = "assets.extra/imagepipe_push.json"  # model_uri, model_artifact_id, version, pushed_at

# --- what the EdgePusher leaves in its PushedModel artifact ------------------------------------
EDGE_REPORT_FILE = "edge_report.json"

# --- tasks and their metrics -------------------------------------------------------------------
Task = Literal["classification", "regression"]
CLASSIFICATION: Task = "classification"
REGRESSION: Task = "regression"
# The TFMA metric each task is gated on, and the short name the run summary and the edge report use.
GATED_METRIC = {CLASSIFICATION: "sparse_categorical_accuracy", REGRESSION: "mean_absolute_error"}
SHORT_METRIC = {CLASSIFICATION: "accuracy", REGRESSION: "mean_absolute_error"}


@dataclasses.dataclass(frozen=True)
class EdgeInfo:
    """edge.json: what the edge model's input and output mean."""

    task: str
    labels: List[str]
    input_preprocessing: str
    output_meaning: str

    def write(self, export_dir: str) -> None:
        write_json(posixpath.join(export_dir, EDGE_EXPORT_INFO), dataclasses.asdict(self))

    @classmethod
    def read(cls, export_dir: str) -> "EdgeInfo":
        return cls(**read_json(posixpath.join(export_dir, EDGE_EXPORT_INFO)))


@dataclasses.dataclass
class TrainingSummary:
    """What the Trainer decided, for the run's summary and report: which epoch's weights it kept and why,
    how much data an epoch saw, and any warning about the data."""

    kept_epoch: int
    epochs_run: int
    kept_because: str
    train_examples: int
    steps_per_epoch: int
    batch_size: int
    warnings: List[str] = dataclasses.field(default_factory=list)

    def write(self, model_run_dir: str) -> None:
        write_json(posixpath.join(model_run_dir, TRAINING_SUMMARY_FILE), dataclasses.asdict(self))

    @classmethod
    def read(cls, model_run_dir: str) -> "TrainingSummary | None":
        path = posixpath.join(model_run_dir, TRAINING_SUMMARY_FILE)
        return cls(**read_json(path)) if json_exists(path) else None


def edge_export_dir(model_dir: str) -> str:
    """<Model artifact>/Format-Edge, from the artifact's uri or its Format-Serving directory."""
    model_dir = model_dir.rstrip("/")
    if os.path.basename(model_dir).startswith("Format-"):
        model_dir = os.path.dirname(model_dir)
    return os.path.join(model_dir, EDGE_EXPORT_DIR)


# --- the spec's `image` section: what the Transform graph makes of every image -------------------
class ImageSpec(BaseModel):
    """imagepipe/spec.py validates it; TFX carries it to the Transform and the Trainer as JSON
    (custom_config), where it is parsed back into this type."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    height: int = Field(..., ge=8, le=1024, description="Model input height in pixels.")
    width: int = Field(..., ge=8, le=1024, description="Model input width in pixels.")
    channels: Literal[1, 3] = Field(3, description="1 (grayscale) or 3 (RGB); inputs are converted.")
    content_margin: Optional[float] = Field(
        None, ge=0, lt=0.5,
        description="Crop each image to its content (what differs from the border colour) and pad it to a square "
        "with this margin on each side, as MNIST does (0.15 = a 20x20 digit in 28x28). For digits and "
        "characters; leave unset for photos.",
    )
    dark_background: bool = Field(
        False, description="Invert images whose background is light, so ink on paper looks like MNIST's light-on-dark."
    )


# --- the spec's `push.edge.device`: the EdgePusher's check on the TFLite Micro C++ library -----
class DeviceCheckSpec(BaseModel):
    """The spec's push.edge.device; the EdgePusher gets it as JSON (tflm_source resolved) and parses it back."""

    model_config = ConfigDict(extra="forbid")

    tflm_source: str = Field(..., description="A TensorFlow Lite Micro source tree with its third-party downloads "
                             "(or its .tar.gz), absolute or relative to the project folder (as data.root): every edge push is built "
                             "and run on the TFLM C++ library, as `imagepipe edge device-check` does.")
    target: Literal["host", "cortex-m4f"] = Field(
        "cortex-m4f", description="cortex-m4f: arm-none-eabi-g++, run under qemu-system-arm (mps2-an386); "
        "host: g++, run here. The RAM budget then counts the device's arena and other static RAM.")
    flash_counts_runtime: bool = Field(
        False, description="true: the flash budget covers a minimal firmware (model + TFLM runtime), not the "
        "model alone.")


# --- the output layout: everything one pipeline writes, under <output_dir>/<pipeline>/ ----------
RUN_LOCK_FILE = ".run.lock"


@dataclasses.dataclass(frozen=True)
class OutputLayout:
    """`outputs/<pipeline>/` and what is in it. Every command that reads or writes there uses this.

    A string root (not a Path) so that an object-store URI keeps its '//'."""

    root: str
    pipeline: str

    @classmethod
    def of(cls, output_dir: str | Path, pipeline: str) -> "OutputLayout":
        return cls(posixpath.join(str(output_dir), pipeline), pipeline)

    def _join(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    @property
    def pipeline_root(self) -> str:
        """TFX's pipeline root: every component's artifacts."""
        return self._join("tfx")

    @property
    def metadata_path(self) -> str:
        return self._join("metadata.sqlite")

    @property
    def serving_dir(self) -> str:
        """Holds models.config and the model's version folders."""
        return self._join("serving")

    @property
    def serving_base_dir(self) -> str:
        """serving/<pipeline>/<version>/: what TF Serving's --model_base_path points at."""
        return self._join("serving", self.pipeline)

    @property
    def edge_base_dir(self) -> str:
        """edge/<pipeline>/<version>/ and edge/<pipeline>/latest."""
        return self._join("edge", self.pipeline)

    @property
    def reports_dir(self) -> str:
        return self._join("reports")

    @property
    def logs_dir(self) -> str:
        return self._join("logs")

    @property
    def run_lock(self) -> str:
        return self._join(RUN_LOCK_FILE)


def read_json(path: str) -> Any:
    """A JSON hand-off file, local or on an object store."""
    return json.loads(versioned_store.read_text(path))


def write_json(path: str, value: Any) -> None:
    """Writes a JSON hand-off file (and its folder), local or on an object store (artifact folders are
    there when the pipeline root is)."""
    versioned_store.makedirs(versioned_store.parent(path) or ".")
    versioned_store.write_atomically(path, json.dumps(value, indent=2))


def json_exists(path: str) -> bool:
    return versioned_store.exists(path)


def read_label_names(examples_uri: str) -> List[str]:
    return read_json(posixpath.join(examples_uri, LABEL_NAMES_FILE))


def read_ingest_report(report_dir: str) -> Dict[str, Any]:
    return read_json(posixpath.join(report_dir, INGEST_REPORT_FILE))
