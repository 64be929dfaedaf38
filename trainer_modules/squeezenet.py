"""squeezenet: SqueezeNet's fire modules, as in the flowers codelab's SqueezeNet lab.

A fire module squeezes its input with 1x1 convolutions, then expands it with
parallel 1x1 and 3x3 convolutions whose outputs are concatenated: most of a
convnet's accuracy for a fraction of its weights.
"""
from typing import Tuple

import keras

from trainer_modules.base import make_run_fn
from trainer_modules.blocks import pool_if_room, softmax_head
from trainer_modules.config import SqueezenetHyperparameters as Hyperparameters


def fire(x, squeeze: int, expand: int):
    squeezed = keras.layers.Conv2D(squeeze, 1, activation="relu", padding="same")(x)
    expand_1x1 = keras.layers.Conv2D(expand // 2, 1, activation="relu", padding="same")(squeezed)
    expand_3x3 = keras.layers.Conv2D(expand // 2, 3, activation="relu", padding="same")(squeezed)
    return keras.layers.Concatenate()([expand_1x1, expand_3x3])


def build_model(input_shape: Tuple[int, int, int], num_classes: int, hp: Hyperparameters) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Conv2D(hp.stem_filters, 3, activation="relu", padding="same")(inputs)
    for squeeze, expand in hp.blocks:
        x = fire(x, squeeze, expand)
        x = pool_if_room(x)
    outputs = softmax_head(x, num_classes, hp.dropout)
    return keras.Model(inputs, outputs, name="squeezenet")


run_fn = make_run_fn(build_model)
