"""mobilenet_transfer: a MobileNetV2 backbone, frozen, with a new softmax head.

Transfer learning as in the flowers codelab: the backbone's features were
learnt on ImageNet; only the head is trained at first. Optionally the top
`fine_tune_layers` of the backbone are then unfrozen and trained for
`fine_tune_epochs` more at a much lower learning rate.

`weights`: `imagenet` (Keras downloads them once into ~/.keras/models, or
finds them there), `none` (random initialisation; then the whole network
trains from the start and there is no fine-tuning phase), or the path of a
`.weights.h5` file saved from a MobileNetV2 backbone of the same `alpha` and
`backbone_size`.
"""
from pathlib import Path
from typing import Optional, Tuple

import keras

from trainer_modules.base import FineTunePlan, make_run_fn
from trainer_modules.blocks import set_batch_norm_momentum
from trainer_modules.config import MobilenetTransferHyperparameters as Hyperparameters

BACKBONE_NAME = "mobilenetv2_backbone"


def build_backbone(hp: Hyperparameters) -> keras.Model:
    weights = hp.weights if hp.weights == "imagenet" else None
    backbone = keras.applications.MobileNetV2(
        input_shape=(hp.backbone_size, hp.backbone_size, 3), alpha=hp.alpha, include_top=False, weights=weights,
        name=BACKBONE_NAME,
    )
    if hp.weights not in ("imagenet", "none"):
        path = Path(hp.weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"trainer.hyperparameters.weights: no weights file at {path}")
        backbone.load_weights(str(path))
    return backbone


def build_model(input_shape: Tuple[int, int, int], num_classes: int, hp: Hyperparameters) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    if input_shape[-1] == 1:
        x = keras.layers.Concatenate()([x, x, x])  # the backbone wants RGB
    if input_shape[:2] != (hp.backbone_size, hp.backbone_size):
        x = keras.layers.Resizing(hp.backbone_size, hp.backbone_size)(x)
    x = keras.layers.Rescaling(2.0, offset=-1.0)(x)  # [0, 1] -> [-1, 1], MobileNetV2's range
    backbone = build_backbone(hp)
    # Pretrained features are frozen while the new head learns; random ones
    # (weights: none) are worth nothing frozen, so they train with the head.
    pretrained = hp.weights != "none"
    backbone.trainable = not pretrained
    if not pretrained:
        set_batch_norm_momentum(backbone)
    # A pretrained backbone's batch-norm statistics stay frozen (training=False),
    # even when fine-tuning; a random one must learn its statistics.
    x = backbone(x, training=False) if pretrained else backbone(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(hp.dropout)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mobilenet_transfer")


def fine_tune(model: keras.Model, hp: Hyperparameters) -> Optional[FineTunePlan]:
    if hp.weights == "none" or not (hp.fine_tune_layers and hp.fine_tune_epochs):
        return None
    backbone = model.get_layer(BACKBONE_NAME)
    backbone.trainable = True
    for layer in backbone.layers[: max(0, len(backbone.layers) - hp.fine_tune_layers)]:
        layer.trainable = False
    return FineTunePlan(epochs=hp.fine_tune_epochs, learning_rate=hp.fine_tune_learning_rate)


run_fn = make_run_fn(build_model, fine_tune)
