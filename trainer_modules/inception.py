"""inception: Inception-style modules, as in the flowers codelab.

Each module looks at one input through 1x1, 3x3 and 5x5 (two 3x3) windows and
a pooled view at once, and concatenates what it sees; 1x1 convolutions keep
the wider branches cheap.
"""
from typing import Tuple

import keras

from trainer_modules.base import make_run_fn
from trainer_modules.blocks import conv_unit, pool_if_room, softmax_head
from trainer_modules.config import InceptionHyperparameters as Hyperparameters


def inception_module(x, filters: int, batch_norm: bool):
    def conv(y, kernel, width=filters):
        return conv_unit(y, width, kernel, batch_norm)

    branch_1x1 = conv(x, 1)
    branch_3x3 = conv(conv(x, 1, filters // 2), 3)
    branch_5x5 = conv(conv(conv(x, 1, filters // 2), 3), 3)  # two 3x3 see a 5x5 window
    branch_pool = conv(keras.layers.MaxPooling2D(3, strides=1, padding="same")(x), 1)
    return keras.layers.Concatenate()([branch_1x1, branch_3x3, branch_5x5, branch_pool])


def build_model(input_shape: Tuple[int, int, int], num_classes: int, hp: Hyperparameters) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="image")
    x = conv_unit(inputs, hp.stem_filters, 3, hp.batch_norm)
    for filters in hp.modules:
        x = inception_module(x, filters, hp.batch_norm)
        x = pool_if_room(x)
    outputs = softmax_head(x, num_classes, hp.dropout)
    return keras.Model(inputs, outputs, name="inception")


run_fn = make_run_fn(build_model)
