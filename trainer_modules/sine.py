"""sine: the TensorFlow Lite Micro "hello world" (the TinyML book, chapter 4).

A 16-16-1 perceptron learns y = sin(x), x in [0, 2 pi], from noisy samples,
small enough for any microcontroller once quantized to int8.

A network this small trained from a random start is seed-sensitive: now and
then it settles on a poor local fit (a flat or one-bump curve; eval MSE far
above the noise's 0.01). So training restarts from a fresh initialisation
while the eval MSE stays above `stuck_mse`, up to `restarts` times, and the
best attempt is kept: a run does not depend on a lucky seed.
"""
import dataclasses
import os
from typing import Callable, Dict, List, Optional, Tuple

import keras
import tensorflow as tf
from absl import logging
from tfx.components.trainer.fn_args_utils import FnArgs

from components.contracts import REGRESSION, EdgeInfo
from trainer_modules.base import EpochLogger, check_trained, save_history
from trainer_modules.config import SineHyperparameters as Hyperparameters
from trainer_modules.config import TrainerSpec
from trainer_modules.context import TrainingContext
from trainer_modules.edge_export import edge_export_dir, export_edge_model
from trainer_modules.warm_start import save_weights, warm_start

X_KEY, Y_KEY = "x", "y"
_FEATURES = {X_KEY: tf.io.FixedLenFeature([], tf.float32), Y_KEY: tf.io.FixedLenFeature([], tf.float32)}


def build_model(hp: Hyperparameters) -> keras.Model:
    inputs = keras.Input(shape=(1,), name=X_KEY)
    x = inputs
    for units in hp.units:
        x = keras.layers.Dense(units, activation="relu")(x)
    outputs = keras.layers.Dense(1, name=Y_KEY)(x)
    return keras.Model(inputs, outputs, name="sine")


def parse(serialized: tf.Tensor):
    features = tf.io.parse_example(serialized, _FEATURES)
    return features[X_KEY][:, None], features[Y_KEY][:, None]


def make_dataset(file_patterns: List[str], batch_size: int, training: bool, seed: int) -> tf.data.Dataset:
    files = tf.data.Dataset.list_files(file_patterns, shuffle=False)
    records = tf.data.TFRecordDataset(files, compression_type="GZIP").cache()
    if training:
        records = records.shuffle(10000, seed=seed, reshuffle_each_iteration=True)
    return records.batch(batch_size, drop_remainder=training).map(parse).prefetch(tf.data.AUTOTUNE)


class SineServing(tf.Module):
    """serving_default: x float32 [None] -> y; serving_examples: tf.Examples -> y."""

    def __init__(self, model: keras.Model):
        super().__init__()
        self.model = model

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name=X_KEY)])
    def serve_x(self, x):
        return {Y_KEY: self.model(x[:, None], training=False)[:, 0]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(self, examples):
        features = tf.io.parse_example(examples, {X_KEY: _FEATURES[X_KEY]})
        return {Y_KEY: self.model(features[X_KEY][:, None], training=False)[:, 0]}


class SineEdgeInputs(tf.Module):
    """tf.Examples -> the edge model's inputs [N, 1] and labels, for calibration and evaluation."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def __call__(self, examples):
        x, y = parse(examples)
        return {"inputs": x, "label": y[:, 0]}


@dataclasses.dataclass
class Fit:
    model: keras.Model
    curves: Dict[str, List[float]]


def fit_once(trainer: TrainerSpec, hp: Hyperparameters, strategy, train_ds, eval_ds, attempt: int, log_dir: str,
             base_model: Optional[str] = None):
    keras.utils.set_random_seed(trainer.seed + attempt)
    with strategy.scope():
        model = build_model(hp)
        if trainer.warm_start and attempt == 0:  # a restart means the start was stuck: begin afresh
            warm_start(model, base_model)
        model.compile(keras.optimizers.Adam(trainer.learning_rate), loss="mse",
                      metrics=[keras.metrics.MeanAbsoluteError(name="mae")],
                      steps_per_execution=trainer.steps_per_execution)
    callbacks = [EpochLogger(trainer.epochs, every=max(1, trainer.epochs // 10)),
                 keras.callbacks.TensorBoard(log_dir=os.path.join(log_dir, f"attempt-{attempt + 1}"))]
    if trainer.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=trainer.early_stopping_patience, restore_best_weights=True))
    history = model.fit(train_ds, validation_data=eval_ds, epochs=trainer.epochs, callbacks=callbacks, verbose=0)
    check_trained(history, trainer)
    curves = dict(history.history)  # copied: evaluate() below empties the model's History
    eval_mse = float(model.evaluate(eval_ds, verbose=0, return_dict=True)["loss"])
    return Fit(model, curves), eval_mse


def train_with_restarts(fit: Callable[[int], Tuple[keras.Model, float]], hp: Hyperparameters):
    """Calls fit(attempt) until the eval MSE is at most stuck_mse (or restarts run out); the best fit wins."""
    best_model, best_mse = None, float("inf")
    for attempt in range(hp.restarts + 1):
        model, eval_mse = fit(attempt)
        logging.info("imagepipe sine attempt %d: eval mse %.4f", attempt + 1, eval_mse)
        if eval_mse < best_mse:
            best_model, best_mse = model, eval_mse
        if eval_mse <= hp.stuck_mse:
            return best_model, best_mse
    logging.warning("sine: every attempt stayed above stuck_mse %.3f; keeping the best (%.4f)", hp.stuck_mse, best_mse)
    return best_model, best_mse


def run_fn(fn_args: FnArgs) -> None:
    context = TrainingContext.from_fn_args(fn_args)
    trainer, hp, strategy = context.trainer, context.hyperparameters, context.strategy
    train_ds = make_dataset(fn_args.train_files, context.global_batch, training=True, seed=trainer.seed)
    eval_ds = make_dataset(fn_args.eval_files, context.global_batch, training=False, seed=trainer.seed)

    best, best_mse = train_with_restarts(
        lambda attempt: fit_once(trainer, hp, strategy, train_ds, eval_ds, attempt, fn_args.model_run_dir,
                                 fn_args.base_model), hp)
    best_model = best.model
    save_weights(best_model, fn_args.serving_model_dir)  # a later run may warm-start from them
    save_history(best.curves, fn_args.model_run_dir)  # the kept attempt's curves
    serving = SineServing(best_model)
    tf.saved_model.save(serving, fn_args.serving_model_dir,
                        signatures={"serving_default": serving.serve_x, "serving_examples": serving.serve_examples})
    export_edge_model(
        best_model, (1,), SineEdgeInputs(),
        EdgeInfo(task=REGRESSION, labels=[], input_preprocessing="x in radians, [0, 2 pi], as float32 (no scaling)",
                 output_meaning="y, the estimate of sin(x)"),
        edge_export_dir(fn_args.serving_model_dir),
    )
