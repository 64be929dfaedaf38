"""alexnet: Krizhevsky et al. (2012), scaled to the input size.

Five convolutions (11x11 stride 4, 5x5, three 3x3) with 3x3 stride-2
max-pooling after the first, second and fifth, then three dense layers with
dropout. At 224x224 it is the original; at smaller sizes the first
convolution's kernel and stride shrink in proportion, so that 28x28 digits
still leave a spatial map for the later layers. `width` scales every layer.
"""
from typing import Tuple

import keras

from trainer_modules.base import make_run_fn
from trainer_modules.config import AlexnetHyperparameters as Hyperparameters

_FILTERS = (96, 256, 384, 384, 256)


def first_layer_geometry(input_size: int) -> Tuple[int, int]:
    """(kernel, stride) of the first convolution: (11, 4) at 224 pixels, down to (3, 1)."""
    scale = input_size / 224
    stride = max(1, round(4 * scale))
    kernel = max(3, int(round(11 * scale)) | 1)  # odd, at least 3
    return kernel, stride


def build_model(input_shape: Tuple[int, int, int], num_classes: int, hp: Hyperparameters) -> keras.Model:
    def width(n: int) -> int:
        return max(8, int(n * hp.width))

    def pool(x):
        # Pool only while there is something left to pool.
        return keras.layers.MaxPooling2D(3, strides=2, padding="same")(x) if min(x.shape[1:3]) >= 4 else x

    kernel, stride = first_layer_geometry(min(input_shape[:2]))
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Conv2D(width(_FILTERS[0]), kernel, strides=stride, padding="same", activation="relu")(inputs)
    x = pool(x)
    x = keras.layers.Conv2D(width(_FILTERS[1]), 5, padding="same", activation="relu")(x)
    x = pool(x)
    for filters in _FILTERS[2:]:
        x = keras.layers.Conv2D(width(filters), 3, padding="same", activation="relu")(x)
    x = pool(x)
    x = keras.layers.Flatten()(x)
    for _ in range(2):
        x = keras.layers.Dense(width(hp.dense_units), activation="relu")(x)
        x = keras.layers.Dropout(hp.dropout)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="alexnet")


run_fn = make_run_fn(build_model)
