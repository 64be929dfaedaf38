"""convnet: the Keras/TPU flowers codelab's convolutional network.

Blocks of 3x3 convolutions (batch-normalised, ReLU) each followed by 2x2
max-pooling, then a dense layer with dropout and a softmax. Small, fast on a
CPU, and a strong baseline on digits (about 99% on MNIST).
"""
from typing import Tuple

import keras

from trainer_modules.base import make_run_fn
from trainer_modules.blocks import conv_unit
from trainer_modules.config import ConvnetHyperparameters as Hyperparameters


def build_model(input_shape: Tuple[int, int, int], num_classes: int, hp: Hyperparameters) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for filters in hp.filters:
        for _ in range(hp.convs_per_block):
            x = conv_unit(x, filters, 3, hp.batch_norm)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x) if hp.head == "flatten" else keras.layers.GlobalAveragePooling2D()(x)
    if hp.dense_units:
        x = keras.layers.Dense(hp.dense_units, activation="relu")(x)
    x = keras.layers.Dropout(hp.dropout)(x)
    # float32 softmax even under mixed precision, for stable probabilities.
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="convnet")


run_fn = make_run_fn(build_model)
