"""Picks the tf.distribute strategy: TPU if one resolves, several GPUs, or the default.

Everything that runs under the strategy is TPU-safe: static shapes,
drop_remainder batches, global batch = per-replica batch x replicas.
"""
from typing import Callable, Optional

import tensorflow as tf
from absl import logging

KINDS = ("auto", "default", "mirrored", "tpu")


def _connect_tpu(tpu: Optional[str], resolver_factory: Callable) -> tf.distribute.Strategy:
    resolver = resolver_factory(tpu="" if tpu in (None, "auto") else tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def choose_strategy(
    kind: str = "auto",
    tpu: Optional[str] = None,
    resolver_factory: Callable = tf.distribute.cluster_resolver.TPUClusterResolver,
) -> tf.distribute.Strategy:
    """`kind`: auto | default | mirrored | tpu (the spec's trainer.distribution).

    With `auto`, a TPU is tried only when `tpu` names one (or is 'auto'), so
    that a laptop never waits on a TPU metadata lookup.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown distribution {kind!r}; use one of {KINDS}")
    if kind == "tpu" or (kind == "auto" and tpu):
        try:
            strategy = _connect_tpu(tpu, resolver_factory)
            logging.info("Training on TPU %s with %d replicas.", tpu, strategy.num_replicas_in_sync)
            return strategy
        except (ValueError, tf.errors.NotFoundError, tf.errors.UnavailableError) as exc:
            if kind == "tpu":
                raise RuntimeError(f"trainer.distribution is 'tpu' but TPU {tpu!r} did not resolve: {exc}") from exc
            logging.warning("No TPU resolved (%s); falling back.", exc)
    gpus = tf.config.list_logical_devices("GPU")
    if kind == "mirrored" or (kind == "auto" and len(gpus) > 1):
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        logging.info("MirroredStrategy over %s.", devices)
        return strategy
    return tf.distribute.get_strategy()
