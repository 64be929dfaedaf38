"""The serving push: integer versions that only grow, whole models only, never the same model twice."""
import json

import pytest
import tensorflow as tf

from components import serving_pusher
from components.versions import existing_versions


@pytest.fixture
def saved_model(tmp_path):
    module = tf.Module()
    module.v = tf.Variable(1.0)
    module.f = tf.function(lambda x: x * module.v, input_signature=[tf.TensorSpec([None], tf.float32)])
    path = tmp_path / "model"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.f})
    return path


def test_versions_grow_and_each_copy_is_complete(saved_model, tmp_path):
    base = tmp_path / "serving" / "m"
    base.mkdir(parents=True)
    (base / "7").mkdir()  # an older version left by someone else
    (base / "notes").mkdir()  # not a version
    assert existing_versions(str(base)) == [7]
    serving_pusher.copy_saved_model_atomically(str(saved_model), str(base / "8"), {"model_uri": "a"})
    assert existing_versions(str(base)) == [7, 8]
    assert sorted(p.name for p in base.iterdir()) == ["7", "8", "notes"]  # no staging folder left
    loaded = tf.saved_model.load(str(base / "8"))
    assert float(loaded.signatures["serving_default"](tf.constant([2.0]))["output_0"][0]) == 2.0
    info = json.loads((base / "8" / serving_pusher.PUSH_INFO).read_text())
    assert info == {"model_uri": "a"}


def test_a_model_already_pushed_is_found_by_its_uri(saved_model, tmp_path):
    base = tmp_path / "serving"
    serving_pusher.copy_saved_model_atomically(str(saved_model), str(base / "1"), {"model_uri": "/m/1"})
    serving_pusher.copy_saved_model_atomically(str(saved_model), str(base / "2"), {"model_uri": "/m/2"})
    assert serving_pusher.find_pushed_version(str(base), "/m/2") == 2
    assert serving_pusher.find_pushed_version(str(base), "/m/3") is None


def test_an_existing_version_is_never_overwritten(saved_model, tmp_path):
    base = tmp_path / "serving"
    serving_pusher.copy_saved_model_atomically(str(saved_model), str(base / "1"), {"model_uri": "first"})
    with pytest.raises(Exception):
        serving_pusher.copy_saved_model_atomically(str(saved_model), str(base / "1"), {"model_uri": "second"})
    assert json.loads((base / "1" / serving_pusher.PUSH_INFO).read_text())["model_uri"] == "first"
