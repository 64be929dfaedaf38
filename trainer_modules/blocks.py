"""Pieces that several families share."""
import keras

# Keras's default (0.99; MobileNetV2's own is 0.999) suits ImageNet-sized runs.
# On a few thousand images a run has only hundreds of steps and the weights
# still move fast, so the moving statistics lag behind the batch statistics and
# evaluation sits at chance while training accuracy climbs (measured on
# digits: eval 0.33 vs train 0.97 after 6 epochs at 0.99; 0.93 vs 0.95 at 0.9).
BATCH_NORM_MOMENTUM = 0.9


def conv_unit(x, filters: int, kernel: int, batch_norm: bool, strides: int = 1):
    """Conv -> (batch norm) -> ReLU."""
    if not batch_norm:
        return keras.layers.Conv2D(filters, kernel, strides=strides, activation="relu", padding="same")(x)
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)  # the norm's offset is the bias
    x = keras.layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM)(x)
    return keras.layers.ReLU()(x)


def set_batch_norm_momentum(model: keras.Model, momentum: float = BATCH_NORM_MOMENTUM) -> None:
    """For a ready-made network (keras.applications) trained from scratch here."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def pool_if_room(x, pool_size: int = 2):
    """Max-pools unless the feature map is already too small to halve."""
    return keras.layers.MaxPooling2D(pool_size)(x) if min(x.shape[1:3]) >= pool_size else x


def softmax_head(x, num_classes: int, dropout: float):
    """Global average pooling, dropout, then a float32 softmax (stable even under mixed precision)."""
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(dropout)(x)
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
