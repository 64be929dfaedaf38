"""The model families: what each one is called, what it predicts, its hyperparameters, and which
spec fields it does not use. No TensorFlow here: the spec validates against this registry, so
`imagepipe validate` answers without loading TensorFlow.

A family's model code is trainer_modules/<name>.py (its `run_fn` is what the TFX Trainer calls);
its `Hyperparameters` is the class below, re-exported there.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Literal, Tuple, Type

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Task = Literal["classification", "regression"]


class _Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DenseHyperparameters(_Hyperparameters):
    units: List[int] = Field([500, 50], min_length=1, description="Hidden dense layers.")
    dropout: float = Field(0.0, ge=0, lt=1)


class ConvnetHyperparameters(_Hyperparameters):
    filters: List[int] = Field([32, 64, 128], min_length=1, description="Filters of each block; one 2x2 pooling per block.")
    convs_per_block: int = Field(2, ge=1, le=4)
    batch_norm: bool = Field(True, description="Batch-normalise each convolution.")
    head: Literal["flatten", "global_average"] = Field(
        "global_average", description="flatten suits small inputs; global_average keeps large inputs cheap."
    )
    dense_units: int = Field(128, ge=0, description="0 = no hidden dense layer.")
    dropout: float = Field(0.3, ge=0, lt=1)


class SqueezenetHyperparameters(_Hyperparameters):
    stem_filters: int = Field(32, ge=1, description="Filters of the first 3x3 convolution.")
    blocks: List[List[int]] = Field(
        [[16, 32], [24, 48], [32, 64]], min_length=1,
        description="Fire modules as [squeeze, expand] pairs; 2x2 max-pooling after each.",
    )
    dropout: float = Field(0.2, ge=0, lt=1)


class InceptionHyperparameters(_Hyperparameters):
    stem_filters: int = Field(32, ge=1)
    modules: List[int] = Field([32, 64, 96], min_length=1,
                               description="Filters of each branch, per module; 2x2 max-pooling after each module.")
    dropout: float = Field(0.2, ge=0, lt=1)
    batch_norm: bool = Field(True, description="Batch-normalise every convolution (Inception v2 onwards): without it "
                                               "the global-average head learns slowly.")


class AlexnetHyperparameters(_Hyperparameters):
    width: float = Field(1.0, gt=0, le=2, description="Multiplier of every layer's width (0.25 for small data).")
    dense_units: int = Field(4096, ge=1, description="Width of the two hidden dense layers, before `width`.")
    dropout: float = Field(0.5, ge=0, lt=1)


class MobilenetTransferHyperparameters(_Hyperparameters):
    weights: str = Field("imagenet", description="imagenet | none | path to a backbone .weights.h5 file.")
    alpha: float = Field(1.0, description="MobileNetV2 width: 0.35, 0.5, 0.75, 1.0, 1.3 or 1.4.")
    backbone_size: int = Field(96, ge=32, description="Images are resized to this square size for the backbone.")
    dropout: float = Field(0.2, ge=0, lt=1)
    fine_tune_layers: int = Field(0, ge=0, description="Backbone layers (from the top) to unfreeze after the head is trained.")
    fine_tune_epochs: int = Field(0, ge=0)
    fine_tune_learning_rate: float = Field(1e-5, gt=0)

    @field_validator("alpha")
    @classmethod
    def _known_alpha(cls, value: float) -> float:
        if value not in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4):
            raise ValueError("MobileNetV2 alpha must be one of 0.35, 0.5, 0.75, 1.0, 1.3, 1.4")
        return value


class MixmatchHyperparameters(_Hyperparameters):
    backbone: str = Field("convnet", description="The image family in trainer_modules/ that MixMatch trains.")
    backbone_hyperparameters: Dict[str, Any] = Field(default_factory=dict, description="The backbone family's own hyperparameters.")
    augmentations: int = Field(2, ge=1, le=8, description="K: augmentations of each unlabelled image for label guessing.")
    temperature: float = Field(0.5, gt=0, le=1, description="T: sharpening temperature of the guessed labels.")
    alpha: float = Field(0.75, gt=0, description="MixUp's Beta(alpha, alpha).")
    lambda_u: float = Field(75.0, ge=0, description="Weight of the unlabelled loss after the ramp-up.")
    rampup_steps: int = Field(1000, ge=0, description="Steps over which lambda_u rises linearly from 0 (paper: 16,000).")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="Decay of the weights' moving average, the exported model.")
    weight_decay: float = Field(0.02, ge=0, description="Decoupled weight decay, times the learning rate per step (the authors' 0.02).")
    pad_crop: float = Field(0.125, ge=0, lt=0.5, description="Pad each side by this fraction of the side, then crop back at random.")
    flip: bool = Field(False, description="Random horizontal flips (the paper's CIFAR-10 setting; not for digits or text).")
    steps_per_epoch: int = Field(100, ge=1, description="Training steps (labelled + unlabelled batch pairs) per epoch.")

    @field_validator("backbone")
    @classmethod
    def _image_family(cls, value: str) -> str:
        if value not in BACKBONES:
            raise ValueError(f"backbone {value!r} is not an image family; use one of: {', '.join(BACKBONES)}")
        return value

    @model_validator(mode="after")
    def _backbone_hyperparameters(self) -> "MixmatchHyperparameters":
        FAMILIES[self.backbone].hyperparameters.model_validate(self.backbone_hyperparameters)  # errors name the field
        return self


class SineHyperparameters(_Hyperparameters):
    units: List[int] = Field([16, 16], min_length=1, description="Hidden ReLU layers.")
    restarts: int = Field(4, ge=0, description="Fresh starts allowed when the eval MSE is above stuck_mse.")
    stuck_mse: float = Field(0.03, gt=0, description="Eval MSE above which a fit counts as stuck (noise 0.1 alone gives 0.01).")


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    task: Task
    hyperparameters: Type[BaseModel]
    summary: str
    # trainer.* fields this family's training does not read: setting one in a spec is refused at
    # validation (it would be silently dropped otherwise).
    ignores: Tuple[str, ...] = ()


FAMILIES: Dict[str, Family] = {family.name: family for family in (
    Family("dense", "classification", DenseHyperparameters, "a multi-layer perceptron on the pixels"),
    Family("convnet", "classification", ConvnetHyperparameters, "blocks of 3x3 convolutions and 2x2 pooling"),
    Family("squeezenet", "classification", SqueezenetHyperparameters, "fire modules: few parameters"),
    Family("inception", "classification", InceptionHyperparameters, "inception modules (parallel 1x1/3x3/5x5 branches)"),
    Family("alexnet", "classification", AlexnetHyperparameters, "AlexNet's layers, width-scaled"),
    Family("mobilenet_transfer", "classification", MobilenetTransferHyperparameters,
           "a MobileNetV2 backbone (ImageNet weights, a weights file, or none) with a new head"),
    Family("mixmatch", "classification", MixmatchHyperparameters,
           "semi-supervised MixMatch around one of the image families",
           ignores=("augment", "early_stopping_patience", "mixed_precision")),
    Family("sine", "regression", SineHyperparameters, "the TinyML hello world: x -> sin(x)",
           ignores=("augment", "cache", "shuffle_buffer", "mixed_precision")),
)}
BACKBONES = tuple(name for name, family in FAMILIES.items() if family.task == "classification" and name != "mixmatch")
