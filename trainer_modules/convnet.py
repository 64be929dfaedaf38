"""convnet: the Keras/TPU flowers codelab's convolutional network.

Blocks of 3x3 convolutions (batch-normalised, ReLU) each followed by 2x2
max-pooling, then a dense layer with dropout and a softmax. Small, fast on a
CPU, and a strong baseline on digits (about 99% on MNIST).
"""
from typing import List, Literal, Tuple

import keras
from pydantic import BaseModel, ConfigDict, Field

from trainer_modules.base import make_run_fn
from trainer_modules.blocks import conv_unit


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filters: List[int] = Field([32, 64, 128], min_length=1, description="Filters of each block; one 2x2 pooling per block.")
    convs_per_block: int = Field(2, ge=1, le=4)
    batch_norm: bool = Field(True, description="Batch-normalise each convolution.")
    head: Literal["flatten", "global_average"] = Field(
        "global_average", description="flatten suits small inputs; global_average keeps large inputs cheap."
    )
    dense_units: int = Field(128, ge=0, description="0 = no hidden dense layer.")
    dropout: float = Field(0.3, ge=0, lt=1)


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


run_fn = make_run_fn(build_model, Hyperparameters)
