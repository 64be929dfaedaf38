"""Warm starts: begin training from the latest blessed model's weights.

Every Trainer run saves its Keras weights beside its serving model
(<model>/Format-Keras/model.weights.h5). With `trainer.warm_start: true` the
pipeline's warm-start resolver hands the Trainer the latest blessed model that
was trained on other data (components/baseline_resolver.py), and the new
model starts from its weights, so a weekly retrain on a new data span needs a
fraction of a first training. A model of another shape (family or
hyperparameters changed) cannot be a starting point: training then starts
from scratch, with a warning.

h5 files are written and read through a local copy: the model folder may be in an object store.
"""
import os
import tempfile
from typing import Optional

import keras
from absl import logging
from tfx.dsl.io import fileio

KERAS_WEIGHTS = os.path.join("Format-Keras", "model.weights.h5")


def weights_path(serving_model_dir: str) -> str:
    """<model>/Format-Serving -> <model>/Format-Keras/model.weights.h5"""
    return os.path.join(os.path.dirname(serving_model_dir.rstrip("/")), KERAS_WEIGHTS)


def save_weights(model: keras.Model, serving_model_dir: str) -> None:
    path = weights_path(serving_model_dir)
    fileio.makedirs(os.path.dirname(path))
    with tempfile.TemporaryDirectory(prefix="imagepipe-weights-") as local:
        model.save_weights(os.path.join(local, os.path.basename(path)))
        fileio.copy(os.path.join(local, os.path.basename(path)), path, overwrite=True)


def warm_start(model: keras.Model, base_model_serving_dir: Optional[str]) -> bool:
    """Loads the base model's weights into `model`; False (and a warning) when it cannot."""
    if not base_model_serving_dir:
        logging.info("imagepipe warm start: no blessed model trained on other data yet; training from scratch")
        return False
    path = weights_path(base_model_serving_dir)
    if not fileio.exists(path):
        logging.warning("imagepipe warm start: %s has no Keras weights; training from scratch", path)
        return False
    try:
        with tempfile.TemporaryDirectory(prefix="imagepipe-weights-") as local:
            fileio.copy(path, os.path.join(local, os.path.basename(path)))
            model.load_weights(os.path.join(local, os.path.basename(path)))
    except ValueError as exc:  # another architecture
        logging.warning("imagepipe warm start: %s does not fit this model (%s); training from scratch", path, exc)
        return False
    logging.info("imagepipe warm start from %s", path)
    return True
