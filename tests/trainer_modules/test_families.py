"""Every image model family in trainer_modules/: builds from its spec hyperparameters and trains a step."""
import importlib

import keras
import numpy as np
import pytest

from imagepipe.spec import TRAINER_MODULES, module_task

# A family builds a Keras model; mixmatch is a way of training one of them (tests/test_mixmatch.py).
IMAGE_FAMILIES = [name for name in TRAINER_MODULES
                  if module_task(name) == "classification" and hasattr(importlib.import_module(f"trainer_modules.{name}"), "build_model")]

# Small settings so each family builds and steps in seconds on a CPU.
SMALL = {
    "dense": {"units": [32, 16]},
    "convnet": {"filters": [8, 16], "dense_units": 16},
    "squeezenet": {"stem_filters": 8, "blocks": [[4, 8], [8, 16]]},
    "inception": {"stem_filters": 8, "modules": [8, 16]},
    "alexnet": {"width": 0.1, "dense_units": 256},
    "mobilenet_transfer": {"weights": "none", "alpha": 0.35, "backbone_size": 32},
}


def test_every_family_is_listed_here():
    assert sorted(SMALL) == sorted(IMAGE_FAMILIES)


@pytest.mark.parametrize("name", IMAGE_FAMILIES)
def test_builds_and_trains_a_step(name):
    family = importlib.import_module(f"trainer_modules.{name}")
    keras.utils.set_random_seed(0)
    model = family.build_model((28, 28, 1), 4, family.Hyperparameters(**SMALL[name]))
    assert model.output_shape == (None, 4)
    model.compile(keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    images = np.random.default_rng(0).uniform(size=(8, 28, 28, 1)).astype("float32")
    history = model.fit(images, np.arange(8) % 4, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    probabilities = model.predict(images, verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("size", [28, 64, 128, 224])
def test_alexnet_scales_from_28_to_224_pixels(size):
    from trainer_modules import alexnet

    model = alexnet.build_model((size, size, 3), 10, alexnet.Hyperparameters(width=0.1, dense_units=128))
    assert model.output_shape == (None, 10)
    assert alexnet.first_layer_geometry(224) == (11, 4)
    assert alexnet.first_layer_geometry(28) == (3, 1)


def test_mobilenet_backbone_loads_weights_from_a_path_and_fine_tunes(tmp_path):
    from trainer_modules import mobilenet_transfer as mt

    hp = mt.Hyperparameters(weights="none", alpha=0.35, backbone_size=32, fine_tune_layers=5, fine_tune_epochs=1)
    saved = mt.build_backbone(hp)
    path = tmp_path / "backbone.weights.h5"
    saved.save_weights(str(path))
    from_path = hp.model_copy(update={"weights": str(path)})
    model = mt.build_model((28, 28, 1), 3, from_path)
    backbone = model.get_layer(mt.BACKBONE_NAME)
    for ours, theirs in zip(backbone.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    assert not any(layer.trainable for layer in backbone.layers)
    plan = mt.fine_tune(model, from_path)
    assert (plan.epochs, plan.learning_rate) == (1, 1e-5)
    assert [layer.trainable for layer in backbone.layers[-5:]] == [True] * 5
    assert not any(layer.trainable for layer in backbone.layers[:-5])


def test_mobilenet_without_pretrained_weights_trains_the_whole_backbone():
    from trainer_modules import mobilenet_transfer as mt

    hp = mt.Hyperparameters(weights="none", alpha=0.35, backbone_size=32, fine_tune_layers=5, fine_tune_epochs=1)
    model = mt.build_model((28, 28, 1), 3, hp)
    assert model.get_layer(mt.BACKBONE_NAME).trainable
    assert mt.fine_tune(model, hp) is None


def test_mobilenet_refuses_a_missing_weights_file(tmp_path):
    from trainer_modules import mobilenet_transfer as mt

    with pytest.raises(FileNotFoundError, match="no weights file"):
        mt.build_backbone(mt.Hyperparameters(weights=str(tmp_path / "nope.weights.h5"), alpha=0.35, backbone_size=32))
