"""The trainer's configuration: the spec's `trainer` section (TrainerSpec, AugmentSpec) and the model
families, each with what it predicts, its hyperparameters and the trainer fields it does not use.

No TensorFlow here: the spec (imagepipe/spec.py) is built from these types, so `imagepipe validate`
answers without loading TensorFlow; TFX carries the section to the Trainer as JSON, and the Trainer
parses it back into TrainerSpec (trainer_modules/context.py).

A family's model code is trainer_modules/<name>.py (its `run_fn` is what the TFX Trainer calls);
its `Hyperparameters` is the class below, re-exported there.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Literal, Optional, Tuple, Type

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Task = Literal["classification", "regression"]


class _Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DenseHyperparameters(_Hyperparameters):
    units: List[int] = Field([500, 50], min_length=1, description="Hidden dense layers.")
    dropout: float = Field(0.0, ge=0, lt=1, description="After each hidden layer.")


class ConvnetHyperparameters(_Hyperparameters):
    filters: List[int] = Field([32, 64, 128], min_length=1, description="Filters of each block; one 2x2 pooling per block.")
    convs_per_block: int = Field(2, ge=1, le=4, description="3x3 convolutions per block.")
    batch_norm: bool = Field(True, description="Batch-normalise each convolution (momentum 0.9: on a few thousand "
                                               "images the moving statistics must keep up with fast-moving weights).")
    head: Literal["flatten", "global_average"] = Field(
        "global_average", description="flatten suits small inputs; global_average keeps large inputs cheap."
    )
    dense_units: int = Field(128, ge=0, description="Hidden dense layer before the softmax; 0 = none.")
    dropout: float = Field(0.3, ge=0, lt=1, description="Before the softmax.")


class SqueezenetHyperparameters(_Hyperparameters):
    stem_filters: int = Field(32, ge=1, description="Filters of the first 3x3 convolution.")
    blocks: List[List[int]] = Field(
        [[16, 32], [24, 48], [32, 64]], min_length=1,
        description="Fire modules as [squeeze, expand] pairs; 2x2 max-pooling after each.",
    )
    dropout: float = Field(0.2, ge=0, lt=1, description="Before the softmax.")


class InceptionHyperparameters(_Hyperparameters):
    stem_filters: int = Field(32, ge=1, description="Filters of the first 3x3 convolution.")
    modules: List[int] = Field([32, 64, 96], min_length=1,
                               description="Filters of each branch, per module; 2x2 max-pooling after each module.")
    dropout: float = Field(0.2, ge=0, lt=1, description="Before the softmax.")
    batch_norm: bool = Field(True, description="Batch-normalise every convolution (Inception v2 onwards): without it "
                                               "the global-average head learns slowly.")


class AlexnetHyperparameters(_Hyperparameters):
    width: float = Field(1.0, gt=0, le=2, description="Multiplier of every layer's width (0.25 for small data).")
    dense_units: int = Field(4096, ge=1, description="Width of the two hidden dense layers, before `width`.")
    dropout: float = Field(0.5, ge=0, lt=1, description="After each hidden dense layer.")


class MobilenetTransferHyperparameters(_Hyperparameters):
    weights: str = Field(
        "imagenet", description="`imagenet` (Keras loads them from ~/.keras/models, downloading them once), `none` "
        "(random; the whole backbone then trains, with no fine-tuning phase), or the path of a .weights.h5 file saved "
        "from a backbone of the same alpha and backbone_size.")
    alpha: float = Field(1.0, description="MobileNetV2 width: 0.35, 0.5, 0.75, 1.0, 1.3 or 1.4.")
    backbone_size: int = Field(96, ge=32, description="Images are resized to this square size for the backbone "
                               "(ImageNet weights exist for 96, 128, 160, 192, 224).")
    dropout: float = Field(0.2, ge=0, lt=1, description="Before the softmax.")
    fine_tune_layers: int = Field(0, ge=0, description="Backbone layers (from the top) to unfreeze after the head is trained.")
    fine_tune_epochs: int = Field(0, ge=0, description="Epochs of the fine-tuning phase.")
    fine_tune_learning_rate: float = Field(1e-5, gt=0, description="Learning rate of the fine-tuning phase.")

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
    ema_decay: float = Field(0.999, ge=0, lt=1, description="Decay of the moving average of all the backbone's weights "
                             "(batch-norm statistics too), the exported model; min(decay, (1 + step) / (10 + step)) "
                             "at each step, so that a short schedule forgets the initial weights.")
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
TRAINER_MODULES = tuple(FAMILIES)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class AugmentSpec(_Strict):
    shift: float = Field(0.0, ge=0, le=0.5, description="Random translation, as a fraction of the size.")
    zoom: float = Field(0.0, ge=0, le=0.5, description="Random zoom in or out, as a fraction.")
    crop: float = Field(0.0, ge=0, lt=1, description="Random crops of up to this fraction of each side, resized back.")
    stretch: float = Field(0.0, ge=0, le=0.5, description="Random change of width alone, as a fraction (narrow or wide shapes).")
    rotation: float = Field(0.0, ge=0, le=0.5, description="Random rotation, as a fraction of a full turn.")
    flip: bool = Field(False, description="Random horizontal flips (not for digits or text).")
    invert: bool = Field(False, description="Randomly invert half the images (ink on paper vs. light on dark).")
    thicken: float = Field(
        0.0, ge=0, le=1, description="Fraction of images whose light strokes are widened by a pixel (pen widths)."
    )
    low_resolution: float = Field(
        0.0, ge=0, lt=1, description="Shrink each batch by up to this fraction and scale it back (blurry, low-res inputs)."
    )


class TrainerSpec(_Strict):
    module: str = Field("convnet", description=f"Model family in trainer_modules/: one of {', '.join(TRAINER_MODULES)}.")
    epochs: int = Field(10, ge=1, le=10000, description="Passes over the train split (at least 20 steps each: a small "
                        "split is repeated within an epoch).")
    batch_size: int = Field(64, ge=1, le=65536, description="Per-replica batch size.")
    learning_rate: float = Field(1e-3, gt=0, le=10, description="Adam's learning rate.")
    early_stopping_patience: int = Field(
        3, ge=0, description="Epochs without a better eval accuracy before training stops (counted from epoch 5); "
        "0 = never stop early. Either way the epoch with the best eval accuracy is the one exported.")
    steps_per_execution: int = Field(1, ge=1, description="Batches per compiled step (higher = less overhead on TPUs).")
    cache: bool = Field(True, description="Cache the decoded train and eval images in memory; when they would take "
                        "more than a quarter of the machine's memory (or of its container's limit) they are decoded "
                        "each epoch, with a warning.")
    shuffle_buffer: int = Field(10000, ge=1, description="Examples shuffled together in the input pipeline.")
    distribution: Literal["auto", "default", "mirrored", "tpu"] = Field(
        "auto", description="auto: TPU if one resolves, MirroredStrategy with >1 GPU, else the default strategy."
    )
    mixed_precision: bool = Field(False, description="bfloat16 on TPUs, float16 on GPUs (ignored on CPUs).")
    tpu: Optional[str] = Field(None, description="TPU name or address for distribution auto/tpu; 'auto' to discover.")
    augment: AugmentSpec = Field(default_factory=AugmentSpec)
    hyperparameters: Dict[str, Any] = Field(
        default_factory=dict, description="Family-specific hyperparameters (see the README per family)."
    )
    seed: int = Field(42, ge=0, le=2**31 - 1, description="Seeds weights, shuffling and augmentation (TensorFlow "
                      "takes 0 to 2**31 - 1).")
    warm_start: bool = Field(
        False, description="Start from the weights of the latest blessed model trained on other data (a new span): "
        "retraining costs a fraction of a first training. Same family and hyperparameters, or it starts from scratch.",
    )

    def family_hyperparameters(self) -> BaseModel:
        """trainer.hyperparameters parsed into the family's own type (trainer_modules/config.py)."""
        return FAMILIES[self.module].hyperparameters.model_validate(self.hyperparameters)

    @field_validator("module")
    @classmethod
    def _known_module(cls, value: str) -> str:
        if value not in TRAINER_MODULES:
            raise ValueError(f"unknown trainer module {value!r}; use one of: {', '.join(TRAINER_MODULES)}")
        return value

    @model_validator(mode="after")
    def _family_hyperparameters(self) -> "TrainerSpec":
        # Each family declares its own hyperparameters (trainer_modules/config.py); check them now,
        # not mid-pipeline, and refuse a field the family would silently drop.
        family = FAMILIES[self.module]
        ignored = [name for name in family.ignores if name in self.model_fields_set]
        if ignored:
            raise ValueError(f"trainer.module {self.module} does not use trainer.{', trainer.'.join(ignored)}; "
                             f"fix: remove {'them' if len(ignored) > 1 else 'it'} from the spec "
                             f"(the {self.module} family: {family.summary})")
        try:
            family.hyperparameters.model_validate(self.hyperparameters)
        except ValidationError as exc:
            problems = "; ".join(
                f"hyperparameters.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(f"{problems} (the {self.module} family's fields are in the README)") from None
        return self
