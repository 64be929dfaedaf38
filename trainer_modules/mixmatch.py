"""mixmatch: semi-supervised training when only a few images are labelled.

MixMatch (Berthelot et al., 2019, https://arxiv.org/abs/1905.02249) around any
family's model (the backbone). Each training step takes a batch of labelled
images and a batch of unlabelled ones (label -1 in the examples):
  1. K stochastic augmentations (pad-and-crop, optional flip) of each unlabelled
     image, one of each labelled image;
  2. label guessing: the model's softmax averaged over the K augmentations and
     sharpened with temperature T;
  3. MixUp of all of them with a shuffled copy, lambda ~ Beta(alpha, alpha),
     lambda' = max(lambda, 1 - lambda), so each mix stays closer to its own image;
  4. loss = cross-entropy on the labelled part + lambda_u x mean squared error
     on the unlabelled part, lambda_u ramped up linearly from 0;
  5. AdamW (decoupled weight decay); an exponential moving average of every
     weight of the backbone (WeightAverage) is the model evaluated and exported.
Batch norm: each step sends all its images, labelled and unlabelled, mixed,
through the backbone in one forward pass, so the batch statistics are over both:
what the paper's interleaving achieves when its code runs a batch in parts.
"""
from __future__ import annotations

import contextlib
import importlib
from typing import Tuple

import keras
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.dsl.io import fileio

from components.contracts import TrainingSummary, read_label_names
from trainer_modules.base import (EpochLogger, cache_plan, check_trained, count_examples, examples_uri, export_all,
                                  kept_epoch, make_dataset, save_history)
from trainer_modules.config import FAMILIES
from trainer_modules.config import MixmatchHyperparameters as Hyperparameters
from trainer_modules.context import TrainingContext
from trainer_modules.warm_start import warm_start


def sharpen(probabilities: tf.Tensor, temperature: float) -> tf.Tensor:
    """p_i^(1/T) / sum_j p_j^(1/T): lower entropy, same most likely class."""
    powered = tf.pow(probabilities, 1.0 / temperature)
    return powered / tf.reduce_sum(powered, axis=-1, keepdims=True)


def guess_labels(predictions: list[tf.Tensor], temperature: float) -> tf.Tensor:
    """Mean of the model's softmax over the K augmentations, sharpened; no gradient flows into the guess."""
    return tf.stop_gradient(sharpen(tf.add_n(predictions) / len(predictions), temperature))


def sample_lambda(batch: int, alpha: float, seed=None) -> tf.Tensor:
    """lambda' = max(lambda, 1 - lambda), lambda ~ Beta(alpha, alpha), one per example."""
    seeds = (None, None) if seed is None else (seed, seed + 1)
    a = tf.random.gamma([batch], alpha, seed=seeds[0])
    b = tf.random.gamma([batch], alpha, seed=seeds[1])
    lam = a / (a + b)
    return tf.maximum(lam, 1.0 - lam)


def mixup(images: tf.Tensor, targets: tf.Tensor, other_images: tf.Tensor, other_targets: tf.Tensor,
          lam: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """lam' * (x1, p1) + (1 - lam') * (x2, p2), per example."""
    lam_images = tf.reshape(lam, [-1, 1, 1, 1])
    lam_targets = tf.reshape(lam, [-1, 1])
    return (lam_images * images + (1.0 - lam_images) * other_images,
            lam_targets * targets + (1.0 - lam_targets) * other_targets)


def rampup(step: tf.Tensor, rampup_steps: int) -> tf.Tensor:
    """0 at step 0, rising linearly to 1 at `rampup_steps`, then 1."""
    if rampup_steps == 0:
        return tf.constant(1.0)
    return tf.minimum(tf.cast(step, tf.float32) / float(rampup_steps), 1.0)


def pad_and_crop(images: tf.Tensor, pad_fraction: float, flip: bool) -> tf.Tensor:
    """The paper's weak augmentation: reflect-pad, random crop back to size, optional flip; per image."""
    height, width = images.shape[1], images.shape[2]
    pad_h, pad_w = int(round(height * pad_fraction)), int(round(width * pad_fraction))
    batch = tf.shape(images)[0]
    if pad_h or pad_w:
        padded = tf.pad(images, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]], mode="REFLECT")
        top = tf.random.uniform([batch], 0, 2 * pad_h + 1, dtype=tf.int32)
        left = tf.random.uniform([batch], 0, 2 * pad_w + 1, dtype=tf.int32)
        # One crop offset per image, by gathering rows and columns.
        rows = top[:, None] + tf.range(height)[None, :]
        cols = left[:, None] + tf.range(width)[None, :]
        images = tf.gather(padded, rows, axis=1, batch_dims=1)
        images = tf.gather(images, cols, axis=2, batch_dims=1)
    if flip:
        flips = tf.random.uniform([batch, 1, 1, 1]) < 0.5
        images = tf.where(flips, tf.reverse(images, axis=[2]), images)
    return images


class MixMatch(keras.Model):
    """Trains `backbone` with MixMatch; `fit` takes ((images, labels), unlabelled images) batches.
    Evaluation (`evaluate`) is of the backbone as it stands; a WeightAverage callback puts
    the averaged weights in at the end of `fit` (KeepBestAverage: those of the best epoch)."""

    def __init__(self, backbone: keras.Model, num_classes: int, hp: Hyperparameters, replicas: int = 1):
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.hp = hp
        self.replicas = replicas
        self.labeled_loss_tracker = keras.metrics.Mean(name="labeled_loss")
        self.unlabeled_loss_tracker = keras.metrics.Mean(name="unlabeled_loss")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    def call(self, images, training=False):
        return self.backbone(images, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker, self.labeled_loss_tracker, self.unlabeled_loss_tracker, self.accuracy_tracker]

    def mixmatch_batch(self, images, labels, unlabeled):
        """The step's inputs: mixed images, their targets, and how many of them are labelled."""
        hp = self.hp
        labeled_aug = pad_and_crop(images, hp.pad_crop, hp.flip)
        unlabeled_augs = [pad_and_crop(unlabeled, hp.pad_crop, hp.flip) for _ in range(hp.augmentations)]
        guess = guess_labels([self.backbone(u, training=True) for u in unlabeled_augs], hp.temperature)
        all_images = tf.concat([labeled_aug, *unlabeled_augs], axis=0)
        all_targets = tf.concat([tf.one_hot(labels, self.num_classes), *[guess] * hp.augmentations], axis=0)
        order = tf.random.shuffle(tf.range(tf.shape(all_images)[0]))
        lam = sample_lambda(tf.shape(all_images)[0], hp.alpha)
        mixed, targets = mixup(all_images, all_targets, tf.gather(all_images, order), tf.gather(all_targets, order), lam)
        return mixed, targets, tf.shape(images)[0]

    def train_step(self, data):
        (images, labels), unlabeled = data
        labels = tf.cast(labels, tf.int32)
        mixed, targets, labeled_count = self.mixmatch_batch(images, labels, unlabeled)
        weight = self.hp.lambda_u * rampup(self.optimizer.iterations, self.hp.rampup_steps)
        with tf.GradientTape() as tape:
            predictions = tf.cast(self.backbone(mixed, training=True), tf.float32)
            labeled_loss = tf.reduce_mean(keras.losses.categorical_crossentropy(
                targets[:labeled_count], predictions[:labeled_count]))
            unlabeled_loss = tf.reduce_mean(tf.square(targets[labeled_count:] - predictions[labeled_count:]))
            loss = labeled_loss + weight * unlabeled_loss
            # Gradients are summed over replicas: each replica contributes its share of the mean.
            scaled = loss / self.replicas
        variables = self.backbone.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        self.loss_tracker.update_state(loss)
        self.labeled_loss_tracker.update_state(labeled_loss)
        self.unlabeled_loss_tracker.update_state(unlabeled_loss)
        self.accuracy_tracker.update_state(labels, self.backbone(images, training=False))
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        images, labels = data
        predictions = tf.cast(self.backbone(images, training=False), tf.float32)
        self.loss_tracker.update_state(tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, predictions)))
        self.accuracy_tracker.update_state(labels, predictions)
        return {"loss": self.loss_tracker.result(), "accuracy": self.accuracy_tracker.result()}


class Supervised(keras.Model):
    """MixMatch's supervised-only baseline (bench/mixmatch.py): the same augmentation of the same
    labelled batches and the same optimizer, with cross-entropy alone."""

    def __init__(self, backbone: keras.Model, hp: Hyperparameters):
        super().__init__()
        self.backbone = backbone
        self.hp = hp
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def call(self, images, training=False):
        return self.backbone(images, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def train_step(self, data):
        images, labels = data
        augmented = pad_and_crop(images, self.hp.pad_crop, self.hp.flip)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                labels, tf.cast(self.backbone(augmented, training=True), tf.float32)))
        variables = self.backbone.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


def optimizer(learning_rate: float, hp: Hyperparameters) -> keras.optimizers.Optimizer:
    """AdamW: weight decay decoupled from the gradient (w -= lr * weight_decay * w each step), as the
    authors' code."""
    return keras.optimizers.AdamW(learning_rate, weight_decay=hp.weight_decay)


def average_decay(step: int, decay: float) -> float:
    """TensorFlow's ExponentialMovingAverage with num_updates: min(decay, (1 + step) / (10 + step)), so that
    the average forgets the random initial weights within a short schedule (at decay 0.999 alone, 13% of
    the average is still the first steps' weights after 2,000 steps)."""
    return min(decay, (1.0 + step) / (10.0 + step))


class WeightAverage(keras.callbacks.Callback):
    """An exponential moving average of all of `model`'s weights, batch-norm statistics included, put into
    the model when `fit` ends. Keras' optimizer average (use_ema) covers only the trainable weights: with
    batch norm, the averaged weights were then evaluated with statistics of other weights, and scored near
    chance on Fashion-MNIST's test images for the first 1,500 steps (bench/mixmatch_fashion.py)."""

    def __init__(self, model: keras.Model, decay: float):
        super().__init__()
        self.averaged, self.decay = model, decay
        self.averages: list | None = None
        self._step = 0

    def on_train_begin(self, logs=None):
        self.averages = [w.copy() for w in self.averaged.get_weights()]
        self._step = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        # One call per execution: with steps_per_execution > 1, as many steps' worth of decay.
        keep = average_decay(step, self.decay) ** (step - self._step)
        self._step = step
        self.averages = [keep * a + (1 - keep) * w for a, w in zip(self.averages, self.averaged.get_weights())]

    def on_train_end(self, logs=None):
        self.averaged.set_weights(self.averages)

    @contextlib.contextmanager
    def swapped_in(self):
        """The averaged weights in the model for the duration (to score them mid-training)."""
        current = self.averaged.get_weights()
        self.averaged.set_weights(self.averages)
        try:
            yield self.averaged
        finally:
            self.averaged.set_weights(current)


class KeepBestAverage(keras.callbacks.Callback):
    """Scores the moving average (what is exported) on the eval split at the end of every epoch, logged as
    val_loss / val_accuracy, and keeps the average of the epoch that scored best: on Fashion-MNIST,
    MixMatch is best midway and falls later, as lambda_u grows and its guesses for the unlabelled images
    get worse (bench/mixmatch_fashion.py's curves), so the last epoch's average is not the one to push. As
    the other families do, the epoch with the best eval accuracy is exported. Goes after `average`
    in the callbacks, so that its end of training comes after the average's."""

    def __init__(self, average: WeightAverage, eval_data: tf.data.Dataset):
        super().__init__()
        self.average, self.eval_data = average, eval_data
        self.accuracies: list[float] = []
        self.best_weights: list | None = None

    @property
    def best_epoch(self) -> int:
        """1-based; the first of equal bests (0 before any epoch), as the other families choose."""
        return kept_epoch({"val_accuracy": self.accuracies}, "val_accuracy")

    def on_epoch_end(self, epoch, logs=None):
        with self.average.swapped_in():
            scores = self.model.evaluate(self.eval_data, verbose=0, return_dict=True)
        if logs is not None:
            logs.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        self.accuracies.append(float(scores["accuracy"]))
        if self.best_epoch == len(self.accuracies):
            self.best_weights = [a.copy() for a in self.average.averages]

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.average.averaged.set_weights(self.best_weights)


class NoUnlabeledImages(ValueError):
    """MixMatch was asked to train without unlabelled images."""


def run_fn(fn_args: FnArgs) -> None:
    context = TrainingContext.from_fn_args(fn_args)
    trainer, hp, strategy, global_batch = context.trainer, context.hyperparameters, context.strategy, \
        context.global_batch
    family = importlib.import_module(f"trainer_modules.{hp.backbone}")
    backbone_hp = FAMILIES[hp.backbone].hyperparameters.model_validate(hp.backbone_hyperparameters)
    label_names = read_label_names(examples_uri(fn_args.train_files))
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    tft_layer = tft_output.transform_features_layer()

    # The whole train split (labelled and unlabelled, one pass) and the eval split.
    train_examples = count_examples(fn_args.train_files, labelled=None)
    cache, warnings = cache_plan(trainer.cache, train_examples + count_examples(fn_args.eval_files),
                                 context.input_shape)
    for warning in warnings:
        logging.warning("imagepipe warning: %s", warning)

    def batches(labelled: bool) -> tf.data.Dataset:
        return make_dataset(fn_args.train_files, tft_layer, global_batch, training=True, cache=cache,
                            shuffle_buffer=trainer.shuffle_buffer, seed=trainer.seed, labelled=labelled)

    # In file order, uncached and unshuffled: parses only as far as the first batch of unlabelled
    # images (a shuffled, cached probe would fill the shuffle buffer and throw the cache away).
    probe = make_dataset(fn_args.train_files, tft_layer, global_batch, training=False, cache=False, labelled=False)
    if not any(True for _ in probe.take(1)):
        raise NoUnlabeledImages(
            "trainer.module mixmatch found no unlabelled images in the train split (at least a batch of "
            f"{global_batch} is needed); fix: put them in <data root>/<data.unlabeled_dir>/, or set "
            "data.labels_per_class to keep only that many labels per class")
    train = tf.data.Dataset.zip((batches(labelled=True).repeat(), batches(labelled=False).map(lambda x, y: x).repeat()))
    eval_ds = make_dataset(fn_args.eval_files, tft_layer, global_batch, training=False, cache=cache,
                           drop_remainder=context.on_tpu)

    with strategy.scope():
        backbone = family.build_model(context.input_shape, len(label_names), backbone_hp)
        if trainer.warm_start:
            warm_start(backbone, fn_args.base_model)
        model = MixMatch(backbone, len(label_names), hp, strategy.num_replicas_in_sync)
        model.compile(optimizer=optimizer(trainer.learning_rate, hp), steps_per_execution=trainer.steps_per_execution)
    fileio.makedirs(fn_args.model_run_dir)
    # The eval split scores the moving average each epoch (not the weights being trained: the average is
    # what is exported), and the best epoch's average is the one kept.
    average = WeightAverage(backbone, hp.ema_decay)
    best = KeepBestAverage(average, eval_ds)
    history = model.fit(train, steps_per_epoch=hp.steps_per_epoch, epochs=trainer.epochs,
                        callbacks=[average, best, EpochLogger(trainer.epochs),
                                   keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)],
                        verbose=0)
    check_trained(history, trainer)
    curves = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    kept, accuracies = best.best_epoch, best.accuracies
    because = f"best eval accuracy of the weights' moving average {accuracies[kept - 1]:.4f} " \
              f"(last epoch {accuracies[-1]:.4f})"
    logging.info("imagepipe kept epoch %d of %d: %s", kept, len(accuracies), because)
    TrainingSummary(kept_epoch=kept, epochs_run=len(accuracies), kept_because=because,
                    train_examples=train_examples, steps_per_epoch=hp.steps_per_epoch,
                    batch_size=global_batch, warnings=warnings).write(fn_args.model_run_dir)
    save_history(curves, fn_args.model_run_dir)
    export_all(backbone, fn_args, tft_output, label_names, context.image)
