"""Pieces that several families end with."""
import keras


def pool_if_room(x, pool_size: int = 2):
    """Max-pools unless the feature map is already too small to halve."""
    return keras.layers.MaxPooling2D(pool_size)(x) if min(x.shape[1:3]) >= pool_size else x


def softmax_head(x, num_classes: int, dropout: float):
    """Global average pooling, dropout, then a float32 softmax (stable even under mixed precision)."""
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(dropout)(x)
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
