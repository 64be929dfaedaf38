"""What every `run_fn` starts from: the spec's sections parsed back into the spec's own types, the
family's hyperparameters, the seed set, the distribution strategy chosen.

TFX hands a Trainer its configuration as JSON (`custom_config`, written by imagepipe/pipeline.py);
this is the one place it is read.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import keras
import tensorflow as tf
from absl import logging
from pydantic import BaseModel
from tfx.components.trainer.fn_args_utils import FnArgs

from components.contracts import ImageSpec
from trainer_modules.config import FAMILIES, TrainerSpec
from trainer_modules.distribution import choose_strategy

# The keys of the Trainer's custom_config.
TRAINER_KEY, IMAGE_KEY, CODE_KEY = "trainer", "image", "code"


def trainer_custom_config(trainer: TrainerSpec, image: Optional[ImageSpec], code: str) -> dict:
    """What imagepipe/pipeline.py gives the Trainer: the sections as the user wrote them (fields left unset
    stay unset, so that parsing them back applies the same defaults and the same checks)."""
    return {TRAINER_KEY: trainer.model_dump(exclude_unset=True),
            IMAGE_KEY: image.model_dump() if image else None, CODE_KEY: code}


def set_mixed_precision(strategy: tf.distribute.Strategy) -> None:
    """bfloat16 on TPUs, float16 on GPUs; on CPUs it would only slow training down."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    elif tf.config.list_logical_devices("GPU"):
        keras.mixed_precision.set_global_policy("mixed_float16")
    else:
        logging.warning("trainer.mixed_precision is on, but there is no TPU or GPU: training in float32.")


@dataclasses.dataclass
class TrainingContext:
    fn_args: FnArgs
    trainer: TrainerSpec
    image: Optional[ImageSpec]
    hyperparameters: BaseModel  # the family's own type (trainer_modules/config.py)
    strategy: tf.distribute.Strategy

    @classmethod
    def from_fn_args(cls, fn_args: FnArgs) -> "TrainingContext":
        config = fn_args.custom_config
        trainer = TrainerSpec.model_validate(config[TRAINER_KEY])
        image = ImageSpec.model_validate(config[IMAGE_KEY]) if config.get(IMAGE_KEY) else None
        hyperparameters = FAMILIES[trainer.module].hyperparameters.model_validate(trainer.hyperparameters)
        keras.utils.set_random_seed(trainer.seed)
        strategy = choose_strategy(trainer.distribution, trainer.tpu)
        if trainer.mixed_precision:
            set_mixed_precision(strategy)
        return cls(fn_args, trainer, image, hyperparameters, strategy)

    @property
    def global_batch(self) -> int:
        """trainer.batch_size is per replica."""
        return self.trainer.batch_size * self.strategy.num_replicas_in_sync

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.image.height, self.image.width, self.image.channels)

    @property
    def on_tpu(self) -> bool:
        return isinstance(self.strategy, tf.distribute.TPUStrategy)
