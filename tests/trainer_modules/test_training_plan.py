"""Small data trains without hand-tuning: enough steps per epoch, and the best epoch is the one kept."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer_modules.base import (CACHE_MEMORY_SHARE, MIN_STEPS_PER_EPOCH, NothingTrained, cache_plan, epoch_plan,
                                  kept_epoch, machine_memory_bytes)


def test_a_small_train_split_is_repeated_to_enough_steps_and_the_user_is_warned():
    steps, warnings = epoch_plan(161, 64)  # the photo set that learnt nothing at 2 steps an epoch
    assert steps == MIN_STEPS_PER_EPOCH
    assert any("161 train images at batch 64 are 3 step(s)" in w for w in warnings)
    steps, warnings = epoch_plan(40, 64)  # smaller than one batch: trained nothing before
    assert steps == MIN_STEPS_PER_EPOCH and any("fewer than one batch of 64" in w for w in warnings)


def test_a_large_train_split_is_one_pass_per_epoch_without_warnings():
    assert epoch_plan(4000, 64) == (63, [])


def test_no_labelled_image_is_an_error_with_the_fix():
    with pytest.raises(NothingTrained, match="no labelled images; fix:"):
        epoch_plan(0, 64)


def test_the_kept_epoch_is_the_first_best_eval_accuracy_not_the_last():
    curves = {"val_accuracy": [0.2, 0.9, 0.98, 0.95, 0.98], "val_loss": [2, 1, 0.5, 0.4, 0.45]}
    assert kept_epoch(curves, "val_accuracy") == 3
    assert kept_epoch(curves, "val_loss") == 4


def test_training_with_repeat_takes_the_planned_steps_even_below_one_batch():
    from trainer_modules.base import make_dataset  # noqa: F401  (the Trainer's own input function is tested e2e)

    images = np.random.default_rng(0).uniform(size=(5, 4, 4, 1)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(5) % 2)).repeat().batch(8, drop_remainder=True)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    steps, _ = epoch_plan(5, 8)
    history = model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    assert len(history.history["loss"]) == 1  # a run on 5 images at batch 8 trains instead of silently nothing


def test_the_decoded_images_are_cached_while_they_fit_a_quarter_of_memory():
    gib = 2**30
    # Fashion-MNIST's 60,000 28x28 images: 188 MB decoded, cached on a 24 GiB machine.
    assert cache_plan(True, 60_000, (28, 28, 1), memory_bytes=24 * gib) == (True, [])
    # 20,000 photos at 224x224x3 are 11.2 GiB decoded: more than a quarter of 24 GiB, so not cached, and said so.
    cache, warnings = cache_plan(True, 20_000, (224, 224, 3), memory_bytes=24 * gib)
    assert cache is False
    assert len(warnings) == 1 and "trainer.cache" in warnings[0] and "11.2 GiB" in warnings[0] \
        and "fix: set trainer.cache: false" in warnings[0]
    # Just under and just over the share.
    per_image = 224 * 224 * 3 * 4
    limit = int(CACHE_MEMORY_SHARE * 24 * gib) // per_image
    assert cache_plan(True, limit, (224, 224, 3), memory_bytes=24 * gib)[0] is True
    assert cache_plan(True, limit + 1, (224, 224, 3), memory_bytes=24 * gib)[0] is False
    # trainer.cache: false stays off, without a warning.
    assert cache_plan(False, 10, (28, 28, 1), memory_bytes=24 * gib) == (False, [])


def test_a_containers_memory_limit_is_the_memory_the_cache_may_use(tmp_path):
    physical = machine_memory_bytes(limit_files=())
    pod_limit = tmp_path / "memory.max"
    pod_limit.write_text(f"{4 * 2**30}\n")  # a Kubeflow pod limited to 4 GiB
    assert machine_memory_bytes(limit_files=(str(pod_limit),)) == min(physical, 4 * 2**30)
    unlimited = tmp_path / "unlimited"
    unlimited.write_text("max\n")
    assert machine_memory_bytes(limit_files=(str(unlimited), str(tmp_path / "missing"))) == physical


def test_examples_are_counted_labelled_unlabelled_or_all_in_one_pass(tmp_path):
    from components.image_transform import LABEL_KEY
    from trainer_modules.base import count_examples

    path = str(tmp_path / "examples.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for label in (0, -1, 1, -1, -1):
            feature = {LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    assert count_examples([path]) == 2
    assert count_examples([path], labelled=False) == 3
    assert count_examples([path], labelled=None) == 5
