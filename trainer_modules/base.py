"""What every trainer module shares: the input pipeline, the training loop and the export.

A family module (convnet.py, ...) only builds its Keras model; its `run_fn`
is `make_run_fn(build_model)`; trainer_modules/context.py parses its configuration.

Input: the raw tf.Examples (TFRecord, GZIP) -> parse -> the Transform graph
(decode, resize, scale) -> cache -> shuffle -> batch (drop_remainder, for TPUs)
-> augment -> prefetch.

Export: a SavedModel with two signatures (docs/contracts.md):
  serving_default(image_bytes: string[None]) -> probabilities, label
  serving_examples(examples: serialized tf.Example[None]) -> probabilities, label
and, for the EdgePusher, the bare model and its input preprocessing
(trainer_modules/edge_export.py).
"""
from __future__ import annotations

import dataclasses
import math
import os
import posixpath
import tempfile
from typing import Callable, Dict, List, Optional, Tuple

import keras
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.dsl.io import fileio

from components.contracts import (
    CLASSIFICATION,
    TRAINING_HISTORY_FILE,
    EdgeInfo,
    ImageSpec,
    TrainingSummary,
    read_label_names,
    write_json,
)
from components.image_transform import IMAGE_KEY, LABEL_KEY, describe_preprocessing
from trainer_modules.config import AugmentSpec, TrainerSpec
from trainer_modules.context import TrainingContext
from trainer_modules.edge_export import edge_export_dir, export_edge_model
from trainer_modules.warm_start import save_weights, warm_start

BEST_WEIGHTS = "best.weights.h5"  # in model_run/: the kept epoch's weights
_PARSE_BATCH = 256
# Fewer steps than this in an epoch and a model barely moves between evaluations: a small train split
# is repeated within the epoch instead (161 photos at batch 64 were 2 steps an epoch, and learnt nothing).
MIN_STEPS_PER_EPOCH = 20
# Early stopping counts no epoch before this one: the first epochs of a fresh model are noise.
EARLY_STOPPING_FROM_EPOCH = 5
_RAW_FEATURES = {
    IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
    LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
}


def examples_uri(file_patterns: List[str]) -> str:
    """fn_args.train_files holds '<examples uri>/Split-train/*'."""
    return os.path.dirname(os.path.dirname(file_patterns[0]))


def _image_mask(images: tf.Tensor, fraction: float, seed: int) -> tf.Tensor:
    """True for a random `fraction` of the images of a batch, shaped to broadcast over pixels."""
    return tf.random.uniform([tf.shape(images)[0], 1, 1, 1], seed=seed) < fraction


def _translation(dx: tf.Tensor, dy: tf.Tensor) -> tf.Tensor:
    one, zero = tf.ones_like(dx), tf.zeros_like(dx)
    return tf.reshape(tf.stack([one, zero, dx, zero, one, dy, zero, zero, one], axis=1), [-1, 3, 3])


def _about_centre(matrix: tf.Tensor, cx: float, cy: float) -> tf.Tensor:
    """`matrix` (a batch of 3x3 maps of pixel coordinates) applied about the image centre."""
    n = tf.shape(matrix)[0]
    to_centre = _translation(tf.fill([n], -cx), tf.fill([n], -cy))
    back = _translation(tf.fill([n], cx), tf.fill([n], cy))
    return back @ matrix @ to_centre


def geometric_transform(augment: AugmentSpec, seed: int) -> Callable[[tf.Tensor], tf.Tensor] | None:
    """Flip, rotation, zoom, stretch and shift, each drawn per image as Keras' random layers draw them, composed
    into one projective transform and applied in one bilinear resample (one pass over the pixels instead of
    one per layer; measured in bench/training_input.py). The matrices map output pixel coordinates to the input
    coordinates sampled, ImageProjectiveTransformV3's convention, so the layers' order (flip first, shift last)
    is flip @ rotation @ zoom @ shift; outside the image is 0."""
    if not (augment.flip or augment.rotation or augment.zoom or augment.stretch or augment.shift):
        return None

    def uniform(n, bound):
        return tf.random.uniform([n], -bound, bound, seed=seed)

    def apply(images: tf.Tensor) -> tf.Tensor:
        n = tf.shape(images)[0]
        height, width = images.shape[1], images.shape[2]
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        one, zero = tf.ones([n]), tf.zeros([n])
        matrix = tf.eye(3, batch_shape=[n])
        if augment.shift:  # a fraction of the size, either way
            matrix = _translation(uniform(n, augment.shift) * width, uniform(n, augment.shift) * height) @ matrix
        if augment.zoom or augment.stretch:  # > 1 samples a wider area: zooms out
            zoom = 1.0 + uniform(n, augment.zoom) if augment.zoom else one
            zoom_x = zoom * (1.0 + uniform(n, augment.stretch)) if augment.stretch else zoom
            scale = tf.reshape(tf.stack([zoom_x, zero, zero, zero, zoom, zero, zero, zero, one], axis=1), [-1, 3, 3])
            matrix = _about_centre(scale, cx, cy) @ matrix
        if augment.rotation:  # a fraction of a full turn, either way
            angle = uniform(n, augment.rotation) * 2.0 * math.pi
            cos, sin = tf.cos(angle), tf.sin(angle)
            rotate = tf.reshape(tf.stack([cos, -sin, zero, sin, cos, zero, zero, zero, one], axis=1), [-1, 3, 3])
            matrix = _about_centre(rotate, cx, cy) @ matrix
        if augment.flip:  # half the images, left to right
            mirrored = tf.random.uniform([n], seed=seed) < 0.5
            sign = tf.where(mirrored, -one, one)
            flip = tf.reshape(tf.stack([sign, zero, tf.where(mirrored, 2.0 * cx * one, zero),
                                        zero, one, zero, zero, zero, one], axis=1), [-1, 3, 3])
            matrix = flip @ matrix
        transforms = tf.reshape(matrix, [-1, 9])[:, :8] / matrix[:, 2:3, 2]
        # The size as a constant when it is known: a tensor would leave the output's height and width unknown
        # whenever the batch size is (a last, smaller batch), and a Flatten head needs them.
        size = images.shape[1:3] if images.shape[1:3].is_fully_defined() else tf.shape(images)[1:3]
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=images, transforms=transforms, output_shape=size, fill_value=0.0,
            interpolation="BILINEAR", fill_mode="CONSTANT")

    return apply


def augmenter(augment: AugmentSpec, seed: int) -> Callable[[tf.Tensor], tf.Tensor] | None:
    """Random geometric and photometric changes from the spec's trainer.augment."""
    geometric = geometric_transform(augment, seed)
    invert, low_resolution, thicken, crop = augment.invert, augment.low_resolution, augment.thicken, augment.crop
    if geometric is None and not invert and not low_resolution and not thicken and not crop:
        return None

    def apply(images: tf.Tensor) -> tf.Tensor:
        if crop:
            # The codelab's random crop: keep (1 - crop) to all of each image,
            # anywhere in it, and resize back to the input size.
            batch = tf.shape(images)[0]
            keep = tf.random.uniform([batch, 1], 1.0 - crop, 1.0, seed=seed)
            corner = tf.random.uniform([batch, 2], 0.0, 1.0, seed=seed) * (1.0 - keep)
            boxes = tf.concat([corner, corner + keep], axis=1)
            images = tf.image.crop_and_resize(images, boxes, tf.range(batch), images.shape[1:3])
        if geometric is not None:
            images = geometric(images)
        # Thickening per image, not per batch: batches stay alike, so
        # batch-norm statistics learnt on them also fit clean images.
        if thicken:
            # Pens and markers: widen light strokes by a pixel (3x3 dilation)
            # in a `thicken` fraction of the images.
            thick = tf.nn.max_pool2d(images, 3, 1, "SAME")
            images = tf.where(_image_mask(images, thicken, seed), thick, images)
        if low_resolution:
            # Scans, thumbnails and small bitmaps: every batch shrunk to as
            # little as 1 - low_resolution of its size and scaled back up (one
            # scale per batch: resizing needs one size; measured, blurring only
            # half the images lost 2 points on scikit-learn's 8x8 digits).
            size = tf.shape(images)[1:3]
            scale = tf.random.uniform([], 1.0 - low_resolution, 1.0, seed=seed)
            small = tf.maximum(tf.cast(tf.cast(size, tf.float32) * scale, tf.int32), 4)
            images = tf.image.resize(tf.image.resize(images, small, antialias=True), size)
        if invert:
            # Half the images inverted: the model learns light-on-dark and
            # dark-on-light alike, as photos of paper and scans differ.
            images = tf.where(_image_mask(images, 0.5, seed), 1.0 - images, images)
        return tf.clip_by_value(images, 0.0, 1.0)

    return apply


def parse_and_transform(serialized: tf.Tensor, transform: Callable) -> tuple[tf.Tensor, tf.Tensor]:
    """Serialized tf.Examples -> (images as the model sees them, labels)."""
    raw = tf.io.parse_example(serialized, _RAW_FEATURES)
    return transform({IMAGE_KEY: raw[IMAGE_KEY]})[IMAGE_KEY], raw[LABEL_KEY]


def make_dataset(
    file_patterns: List[str],
    transform: Callable[[Dict[str, tf.Tensor]], Dict[str, tf.Tensor]],
    batch_size: int,
    training: bool,
    cache: bool = True,
    shuffle_buffer: int = 10000,
    augment: Callable | None = None,
    seed: int = 42,
    drop_remainder: bool = True,
    labelled: bool = True,
    repeat: bool = False,
) -> tf.data.Dataset:
    """(images float32 [batch, h, w, c], labels int64 [batch]) batches of the labelled examples
    (`labelled=False`: of the unlabelled ones, label -1, which only semi-supervised trainers use)."""
    files = tf.data.Dataset.list_files(file_patterns, shuffle=training, seed=seed)
    records = files.interleave(
        lambda path: tf.data.TFRecordDataset(path, compression_type="GZIP"),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not training,
    )

    dataset = (
        records.batch(_PARSE_BATCH)
        .map(lambda serialized: parse_and_transform(serialized, transform), num_parallel_calls=tf.data.AUTOTUNE)
        .unbatch()
        .filter(lambda image, label: (label >= 0) == labelled)
    )
    if cache:
        dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:  # endless: the caller sets steps_per_epoch
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if training and augment is not None:
        dataset = dataset.map(lambda x, y: (augment(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


class ServingModule(tf.Module):
    """The exported model: the Transform graph, the Keras model and the class names."""

    def __init__(self, model: keras.Model, tft_output: tft.TFTransformOutput, label_names: List[str]):
        super().__init__()
        self.model = model
        self.tft_layer = tft_output.transform_features_layer()
        self.label_names = tf.Variable(label_names, trainable=False, dtype=tf.string, name="label_names")

    def _predict(self, image_bytes: tf.Tensor) -> Dict[str, tf.Tensor]:
        images = self.tft_layer({IMAGE_KEY: image_bytes})[IMAGE_KEY]
        probabilities = tf.cast(self.model(images, training=False), tf.float32)
        label = tf.gather(self.label_names, tf.argmax(probabilities, axis=-1))
        return {"probabilities": probabilities, "label": label}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_image_bytes(self, image_bytes):
        return self._predict(image_bytes)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(self, examples):
        parsed = tf.io.parse_example(examples, {IMAGE_KEY: _RAW_FEATURES[IMAGE_KEY]})
        return self._predict(parsed[IMAGE_KEY])


class ImageEdgeInputs(tf.Module):
    """tf.Examples -> the edge model's inputs (decoded by the Transform graph) and labels."""

    def __init__(self, tft_output: tft.TFTransformOutput):
        super().__init__()
        self.tft_layer = tft_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def __call__(self, examples):
        images, labels = parse_and_transform(examples, self.tft_layer)
        return {"inputs": images, "label": labels}


def export_serving_model(model, tft_output, label_names: List[str], export_dir: str) -> None:
    module = ServingModule(model, tft_output, label_names)
    tf.saved_model.save(
        module,
        export_dir,
        signatures={
            "serving_default": module.serve_image_bytes,
            "serving_examples": module.serve_examples,
        },
    )


class EpochLogger(keras.callbacks.Callback):
    """One log line per epoch, so that `imagepipe run` can show training progress."""

    def __init__(self, epochs: int, every: int = 1):
        super().__init__()
        self._epochs = epochs
        self._every = every

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self._every and epoch not in (0, self._epochs - 1):
            return
        logs = logs or {}
        metrics = " ".join(f"{k}={v:.4f}" for k, v in sorted(logs.items()) if isinstance(v, (int, float)))
        logging.info("imagepipe epoch %d/%d %s", epoch + 1, self._epochs, metrics)


@dataclasses.dataclass
class FineTunePlan:
    """A second training phase, after a family's `fine_tune` unfroze some layers."""

    epochs: int
    learning_rate: float


class NothingTrained(RuntimeError):
    """Keras ran no training step."""


def count_examples(file_patterns: List[str], labelled: Optional[bool] = True) -> int:
    """Labelled (or unlabelled; None: all) examples in the files: one pass over the label feature only."""
    files = tf.io.gfile.glob(file_patterns) if isinstance(file_patterns, str) else \
        [f for pattern in file_patterns for f in tf.io.gfile.glob(pattern)]
    records = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(4096)
    labels = records.map(lambda s: tf.io.parse_example(s, {LABEL_KEY: _RAW_FEATURES[LABEL_KEY]})[LABEL_KEY])
    if labelled is None:
        return int(sum(int(tf.size(batch)) for batch in labels))
    return int(sum(int(tf.reduce_sum(tf.cast((batch >= 0) == labelled, tf.int32))) for batch in labels))


# trainer.cache holds the decoded images (float32) in memory; beyond this share of the machine's memory a
# big photo folder would push the Trainer into swap or the out-of-memory killer.
CACHE_MEMORY_SHARE = 0.25


# A container's memory limit (cgroup v2, then v1): a Kubeflow pod's is far below its node's memory.
CGROUP_MEMORY_LIMIT_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def machine_memory_bytes(limit_files: tuple = CGROUP_MEMORY_LIMIT_FILES) -> int:
    """Physical memory, or the container's memory limit when that is smaller."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in limit_files:
        try:
            with open(path) as handle:
                limit = handle.read().strip()
        except OSError:
            continue
        if limit.isdigit():  # "max" (v2) means no limit
            memory = min(memory, int(limit))
    return memory


def cache_plan(cache: bool, examples: int, input_shape: Tuple[int, int, int],
               memory_bytes: Optional[int] = None) -> tuple[bool, List[str]]:
    """(cache or not, warnings): trainer.cache, unless the decoded images would take more than
    CACHE_MEMORY_SHARE of the machine's memory; then each epoch decodes them again."""
    if not cache:
        return False, []
    memory_bytes = memory_bytes or machine_memory_bytes()
    decoded = examples * math.prod(input_shape) * 4
    if decoded <= CACHE_MEMORY_SHARE * memory_bytes:
        return True, []
    return False, [f"trainer.cache: the {examples:,} decoded images of the train and eval splits would take "
                   f"{decoded / 2**30:.1f} GiB, more than {CACHE_MEMORY_SHARE:.0%} of the "
                   f"{memory_bytes / 2**30:.1f} GiB this machine (or its container's limit) allows; they are decoded again each epoch instead; fix: set "
                   "trainer.cache: false to say so (and silence this), or train on a machine with more memory"]


def epoch_plan(train_examples: int, global_batch: int) -> tuple[int, List[str]]:
    """(steps per epoch, warnings): at least MIN_STEPS_PER_EPOCH, the train split repeated as needed."""
    if train_examples == 0:
        raise NothingTrained("the train split has no labelled images; fix: add images to the class folders, or "
                             "check data.train_buckets")
    full_pass = -(-train_examples // global_batch)
    warnings = []
    if train_examples < global_batch:
        warnings.append(f"the train split has {train_examples} images, fewer than one batch of {global_batch} "
                        f"(trainer.batch_size): each epoch repeats it; a smaller batch_size trains on more "
                        "distinct batches")
    if full_pass < MIN_STEPS_PER_EPOCH:
        warnings.append(f"{train_examples} train images at batch {global_batch} are {full_pass} step(s): each epoch "
                        f"runs {MIN_STEPS_PER_EPOCH} steps, repeating the train split")
    return max(full_pass, MIN_STEPS_PER_EPOCH), warnings


def kept_epoch(curves: Dict[str, List[float]], monitor: str) -> int:
    """The epoch (1-based) whose weights the checkpoint kept: the first best value of `monitor`."""
    values = curves.get(monitor) or []
    if not values:
        return len(next(iter(curves.values()), []))
    best = max(values) if "accuracy" in monitor else min(values)
    return values.index(best) + 1


def check_trained(history: keras.callbacks.History, trainer: TrainerSpec) -> None:
    """Keras silently trains nothing when a chunk of steps_per_execution
    batches is more than an epoch holds; say so, with the fix."""
    if not history.history:
        raise NothingTrained(
            f"no training step ran: trainer.steps_per_execution ({trainer.steps_per_execution}) is more than "
            "the batches in one epoch, or the train split is smaller than trainer.batch_size "
            f"({trainer.batch_size}); fix: lower steps_per_execution or batch_size in the spec"
        )


def save_history(curves: Dict[str, List[float]], model_run_dir: str) -> None:
    """Per-epoch metrics of the model that is kept (model_run/history.json): the run report draws them."""
    write_json(posixpath.join(model_run_dir, TRAINING_HISTORY_FILE),
               {key: [float(v) for v in values] for key, values in curves.items()})


def compile_model(model: keras.Model, learning_rate: float, steps_per_execution: int) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        steps_per_execution=steps_per_execution,
    )


def train(fn_args: FnArgs, build_model: Callable, fine_tune: Callable | None = None) -> keras.Model:
    context = TrainingContext.from_fn_args(fn_args)
    trainer, hparams, strategy, global_batch = context.trainer, context.hyperparameters, context.strategy, \
        context.global_batch
    label_names = read_label_names(examples_uri(fn_args.train_files))
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    tft_layer = tft_output.transform_features_layer()

    train_examples = count_examples(fn_args.train_files)
    steps_per_epoch, warnings = epoch_plan(train_examples, global_batch)
    cache, cache_warnings = cache_plan(trainer.cache, train_examples + count_examples(fn_args.eval_files),
                                       context.input_shape)
    for warning in warnings + cache_warnings:
        logging.warning("imagepipe warning: %s", warning)
    if trainer.steps_per_execution > steps_per_epoch:
        raise NothingTrained(f"trainer.steps_per_execution ({trainer.steps_per_execution}) is more than the "
                             f"{steps_per_epoch} steps of an epoch: Keras would train nothing; fix: lower it")
    train_ds = make_dataset(
        fn_args.train_files, tft_layer, global_batch, training=True, cache=cache,
        shuffle_buffer=trainer.shuffle_buffer, augment=augmenter(trainer.augment, trainer.seed),
        seed=trainer.seed, repeat=True,
    )
    # Eval batches keep their remainder (every eval image counts) except on
    # TPUs, which need static shapes.
    eval_ds = make_dataset(fn_args.eval_files, tft_layer, global_batch, training=False, cache=cache,
                           drop_remainder=context.on_tpu)

    with strategy.scope():
        model = build_model(context.input_shape, len(label_names), hparams)
        if trainer.warm_start:
            warm_start(model, fn_args.base_model)
        compile_model(model, trainer.learning_rate, trainer.steps_per_execution)
    model.summary(print_fn=logging.info)
    fileio.makedirs(fn_args.model_run_dir)

    # The epoch with the best eval accuracy (the metric the Evaluator gates on) is the one exported,
    # whether or not training stops early; its weights are checkpointed on this machine (h5 files need a
    # local file; the model run folder may be in an object store) and kept beside the TensorBoard logs.
    monitor = "val_accuracy"
    scratch = tempfile.TemporaryDirectory(prefix="imagepipe-best-")
    best_weights = os.path.join(scratch.name, BEST_WEIGHTS)
    callbacks = [
        EpochLogger(trainer.epochs),
        keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir),
        keras.callbacks.ModelCheckpoint(best_weights, monitor=monitor, mode="max", save_best_only=True,
                                        save_weights_only=True),
    ]
    if trainer.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, mode="max", patience=trainer.early_stopping_patience,
            start_from_epoch=min(EARLY_STOPPING_FROM_EPOCH, trainer.epochs - 1)))
    fit = dict(validation_data=eval_ds, steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=0)
    history = model.fit(train_ds, epochs=trainer.epochs, **fit)
    check_trained(history, trainer)
    curves = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    plan = fine_tune(model, hparams) if fine_tune else None
    if plan:
        logging.info("imagepipe fine-tuning for %d epochs at learning rate %g", plan.epochs, plan.learning_rate)
        with strategy.scope():
            compile_model(model, plan.learning_rate, trainer.steps_per_execution)
        callbacks[0] = EpochLogger(plan.epochs)
        more = model.fit(train_ds, epochs=plan.epochs, **fit)
        for key, values in more.history.items():
            curves.setdefault(key, []).extend(float(v) for v in values)

    epochs_run = len(curves.get(monitor, []))
    kept = kept_epoch(curves, monitor)
    if os.path.exists(best_weights):
        model.load_weights(best_weights)
        fileio.copy(best_weights, posixpath.join(fn_args.model_run_dir, BEST_WEIGHTS), overwrite=True)
    scratch.cleanup()
    because = f"best eval accuracy {curves[monitor][kept - 1]:.4f} (last epoch {curves[monitor][-1]:.4f})"
    logging.info("imagepipe kept epoch %d of %d: %s", kept, epochs_run, because)
    TrainingSummary(kept_epoch=kept, epochs_run=epochs_run, kept_because=because, train_examples=train_examples,
                    steps_per_epoch=steps_per_epoch, batch_size=global_batch, warnings=warnings
                    ).write(fn_args.model_run_dir)
    save_history(curves, fn_args.model_run_dir)
    export_all(model, fn_args, tft_output, label_names, context.image)
    return model


def export_all(model: keras.Model, fn_args: FnArgs, tft_output: tft.TFTransformOutput, label_names: List[str],
               image: ImageSpec) -> None:
    """The serving SavedModel, the Keras weights (a later run may warm-start from them) and the edge export."""
    export_serving_model(model, tft_output, label_names, fn_args.serving_model_dir)
    save_weights(model, fn_args.serving_model_dir)
    export_edge_model(
        model, (image.height, image.width, image.channels), ImageEdgeInputs(tft_output),
        EdgeInfo(task=CLASSIFICATION, labels=label_names, input_preprocessing=describe_preprocessing(image),
                 output_meaning="class probabilities, in the order of labels"),
        edge_export_dir(fn_args.serving_model_dir),
    )


def make_run_fn(build_model: Callable, fine_tune: Callable | None = None) -> Callable[[FnArgs], None]:
    def run_fn(fn_args: FnArgs) -> None:
        train(fn_args, build_model, fine_tune)

    return run_fn
