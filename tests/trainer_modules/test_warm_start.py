"""trainer_modules/warm_start.py: weights saved beside the serving model, loaded into a model of the same shape."""
import keras
import numpy as np

from trainer_modules import warm_start


def small(units):
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(units), keras.layers.Dense(2)])


def test_weights_round_trip_through_the_model_directory(tmp_path):
    serving_dir = str(tmp_path / "model" / "Format-Serving")
    trained = small(4)
    warm_start.save_weights(trained, serving_dir)
    assert (tmp_path / "model" / "Format-Keras" / "model.weights.h5").is_file()
    fresh = small(4)
    assert warm_start.warm_start(fresh, serving_dir)
    for ours, theirs in zip(fresh.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(ours, theirs)


def test_another_shape_or_no_base_trains_from_scratch(tmp_path):
    serving_dir = str(tmp_path / "model" / "Format-Serving")
    warm_start.save_weights(small(4), serving_dir)
    other = small(5)
    before = [w.copy() for w in other.get_weights()]
    assert not warm_start.warm_start(other, serving_dir)
    for ours, theirs in zip(other.get_weights(), before):
        np.testing.assert_array_equal(ours, theirs)
    assert not warm_start.warm_start(small(4), None)
    assert not warm_start.warm_start(small(4), str(tmp_path / "nothing" / "Format-Serving"))
