"""dense: the flowers codelab's baseline, Flatten -> Dense(500) -> Dense(50) -> softmax.

No convolutions: it sees pixels, not shapes. The number every other family must beat.
"""
from typing import Tuple

import keras

from trainer_modules.base import make_run_fn
from trainer_modules.config import DenseHyperparameters as Hyperparameters


def build_model(input_shape: Tuple[int, int, int], num_classes: int, hp: Hyperparameters) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Flatten()(inputs)
    for units in hp.units:
        x = keras.layers.Dense(units, activation="relu")(x)
        x = keras.layers.Dropout(hp.dropout)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="dense")


run_fn = make_run_fn(build_model)
