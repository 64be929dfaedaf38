"""Benchmark: what the Trainer's input pipeline delivers, against what the model eats.

  python bench/training_input.py [spec]   (default pipelines/digits.yaml; writes bench/results/training_input.json)

Needs a finished run of the spec (`make run`): it reads that run's examples
(gzip TFRecords) and Transform graph, and measures, in images per second:
  1. one by one: each original file read, decoded, resized and scaled in a Python loop
     (PIL), and with the Transform graph's own preprocessing called per file;
  2. the Trainer's tf.data pipeline (trainer_modules/base.make_dataset, the spec's
     batch size and augmentation), first epoch (parse + Transform graph) and
     later epochs (from its in-memory cache), and the mean over the spec's
     epochs (first epoch + cached ones); no model;
  3. what the spec's model consumes: training steps on batches already in memory.
Targets (issue 8): the pipeline >= 3x one by one, and >= 3x the model's appetite.
Each number is the median of several passes.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
REPEATS = 3

import importlib  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
from measure import write_result  # noqa: E402
from PIL import Image  # noqa: E402

from components.contracts import read_label_names  # noqa: E402
from components.image_transform import decode_image  # noqa: E402
from imagepipe.spec import load_spec  # noqa: E402
from trainer_modules.base import augmenter, compile_model, make_dataset  # noqa: E402


def newest(folder: Path) -> Path:
    """TFX names each output <component>/<output>/<execution id>: the highest id is the newest."""
    runs = sorted((p for p in folder.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)) if folder.is_dir() else []
    if not runs:
        raise SystemExit(f"nothing under {folder}; run the pipeline first (`make run`)")
    return runs[-1]


def one_by_one(files: list[Path], height: int, width: int, channels: int) -> float:
    """The notebook way: open, decode, resize, scale, one file at a time."""
    mode = "L" if channels == 1 else "RGB"
    start = time.perf_counter()
    for path in files:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert(mode).resize((width, height), Image.BILINEAR), np.float32) / 255.0
        assert pixels.shape[:2] == (height, width)
    return len(files) / (time.perf_counter() - start)


def through_dataset(dataset: tf.data.Dataset, epochs: int) -> list[float]:
    """Images per second of each pass over `dataset`."""
    rates = []
    for _ in range(epochs):
        images, start = 0, time.perf_counter()
        for batch, _labels in dataset:
            images += int(batch.shape[0])
        rates.append(images / (time.perf_counter() - start))
    return rates


def same_work_one_by_one(files: list[Path], image: dict) -> float:
    """The Transform graph's own per-image preprocessing (crop to content, invert,
    resize), called on one file at a time, as a script reusing it would."""
    preprocess = tf.function(lambda data: decode_image(
        data, image["height"], image["width"], image["channels"], image["content_margin"], image["dark_background"]))
    preprocess(tf.io.read_file(str(files[0])))  # traced once
    start = time.perf_counter()
    for path in files:
        preprocess(tf.io.read_file(str(path)))
    return len(files) / (time.perf_counter() - start)


def model_appetite(loaded, batches: list, num_classes: int) -> float:
    """Images per second of training steps on batches already in memory."""
    spec = loaded.spec
    family = importlib.import_module(f"trainer_modules.{spec.trainer.module}")
    hparams = family.Hyperparameters.model_validate(spec.trainer.hyperparameters or {})
    model = family.build_model((spec.image.height, spec.image.width, spec.image.channels), num_classes, hparams)
    compile_model(model, spec.trainer.learning_rate, spec.trainer.steps_per_execution)
    in_memory = tf.data.Dataset.from_tensor_slices(
        (tf.concat([b[0] for b in batches], 0), tf.concat([b[1] for b in batches], 0))
    ).batch(spec.trainer.batch_size).cache()
    model.fit(in_memory, epochs=1, verbose=0)  # builds and traces the step
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        model.fit(in_memory, epochs=1, verbose=0)
        rates.append(sum(int(b[0].shape[0]) for b in batches) / (time.perf_counter() - start))
    return statistics.median(rates)


def main(spec_path: str = "pipelines/digits.yaml") -> dict:
    loaded = load_spec(REPO / spec_path)
    spec = loaded.spec
    tfx_root = Path(loaded.layout.pipeline_root)
    examples = newest(tfx_root / "ImageExampleGen" / "examples")
    transform_graph = newest(tfx_root / "Transform" / "transform_graph")
    tft_layer = tft.TFTransformOutput(str(transform_graph)).transform_features_layer()
    train_files = [str(examples / "Split-train" / "*")]

    files = sorted(p for p in loaded.data_root.rglob("*") if p.is_file() and not p.name.startswith("."))
    one_by_one_rate = statistics.median(
        one_by_one(files, spec.image.height, spec.image.width, spec.image.channels) for _ in range(REPEATS))
    same_work_rate = statistics.median(same_work_one_by_one(files, spec.image.model_dump()) for _ in range(REPEATS))

    def dataset(cache: bool, augment: bool) -> tf.data.Dataset:
        return make_dataset(train_files, tft_layer, spec.trainer.batch_size, training=True, cache=cache,
                            shuffle_buffer=spec.trainer.shuffle_buffer, seed=spec.trainer.seed,
                            augment=augmenter(spec.trainer.augment, spec.trainer.seed) if augment else None)

    uncached = statistics.median(through_dataset(dataset(cache=False, augment=False), REPEATS))
    cached = through_dataset(dataset(cache=True, augment=False), REPEATS + 1)[1:]  # pass 1 fills the cache
    augmented = through_dataset(dataset(cache=True, augment=True), REPEATS + 1)[1:]
    batches = list(dataset(cache=False, augment=False).take(30))
    appetite = model_appetite(loaded, batches, len(read_label_names(str(examples))))

    # The Trainer reads every epoch after the first from the cache, with the spec's augmentation.
    delivered = statistics.median(augmented)
    epochs = spec.trainer.epochs
    over_training = epochs / (1 / uncached + (epochs - 1) / delivered)
    result = {
        "benchmark": "training_input",
        "spec": spec_path,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__},
        "images": len(files),
        "examples": str(examples.relative_to(REPO)) if examples.is_relative_to(REPO) else str(examples),
        "images_per_second": {
            "one_by_one_files": round(one_by_one_rate, 1),
            "one_by_one_files_same_preprocessing": round(same_work_rate, 1),
            "pipeline_first_epoch_parse_and_transform": round(uncached, 1),
            "pipeline_cached": round(statistics.median(cached), 1),
            "pipeline_cached_with_augmentation": round(delivered, 1),
            "pipeline_over_the_specs_training": round(over_training, 1),
            "model_training_steps": round(appetite, 1),
        },
        "ratios": {
            "over_training_vs_one_by_one": round(over_training / one_by_one_rate, 2),
            "over_training_vs_one_by_one_same_preprocessing": round(over_training / same_work_rate, 2),
            "first_epoch_vs_one_by_one_same_preprocessing": round(uncached / same_work_rate, 2),
            "first_epoch_vs_one_by_one": round(uncached / one_by_one_rate, 2),
            "cached_augmented_vs_one_by_one": round(delivered / one_by_one_rate, 2),
            "first_epoch_vs_model": round(uncached / appetite, 2),
            "cached_augmented_vs_model": round(delivered / appetite, 2),
        },
        "targets": {"vs_one_by_one": 3.0, "vs_model": 3.0},
        "repeats": REPEATS,
        "batch_size": spec.trainer.batch_size,
    }
    ratios = result["ratios"]
    result["target_met"] = {
        # The same work per image (the Transform graph's) one file at a time, and a bare PIL decode + resize.
        "vs_one_by_one_same_preprocessing": ratios["over_training_vs_one_by_one_same_preprocessing"] >= 3,
        "vs_one_by_one_bare_decode": ratios["over_training_vs_one_by_one"] >= 3,
        "vs_model": min(ratios["first_epoch_vs_model"], ratios["cached_augmented_vs_model"]) >= 3,
    }
    write_result("training_input", result)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(*sys.argv[1:])
