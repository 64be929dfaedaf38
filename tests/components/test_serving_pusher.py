"""The serving push: integer versions that only grow, whole models only, never the same model twice."""
import json

import pytest
import tensorflow as tf

from components import serving_pusher


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
    versions = serving_pusher.store(str(base))
    assert versions.numbered() == [7] and versions.versions() == []  # 7 has no push record: not whole
    assert versions.next_version() == 8  # a number is never reused
    serving_pusher.copy_saved_model(str(saved_model), str(base), 8, {"model_uri": "a"})
    assert versions.numbered() == [7, 8] and versions.versions() == [8]
    assert sorted(p.name for p in base.iterdir()) == ["7", "8", "notes"]  # no staging folder left
    loaded = tf.saved_model.load(str(base / "8"))
    assert float(loaded.signatures["serving_default"](tf.constant([2.0]))["output_0"][0]) == 2.0
    info = json.loads((base / "8" / serving_pusher.PUSH_INFO).read_text())
    assert info == {"model_uri": "a"}


def test_a_model_already_pushed_is_found_by_its_uri(saved_model, tmp_path):
    base = tmp_path / "serving"
    serving_pusher.copy_saved_model(str(saved_model), str(base), 1, {"model_uri": "/m/1"})
    serving_pusher.copy_saved_model(str(saved_model), str(base), 2, {"model_uri": "/m/2"})
    assert serving_pusher.store(str(base)).find("model_uri", "/m/2") == 2
    assert serving_pusher.store(str(base)).find("model_uri", "/m/3") is None


def test_an_existing_version_is_never_overwritten(saved_model, tmp_path):
    base = tmp_path / "serving"
    serving_pusher.copy_saved_model(str(saved_model), str(base), 1, {"model_uri": "first"})
    with pytest.raises(FileExistsError):
        serving_pusher.copy_saved_model(str(saved_model), str(base), 1, {"model_uri": "second"})
    assert json.loads((base / "1" / serving_pusher.PUSH_INFO).read_text())["model_uri"] == "first"


def test_the_marker_and_the_record_are_written_after_everything_else(saved_model, tmp_path, monkeypatch):
    """Checked on a store without rename (as object stores are): the copy order is what protects readers."""
    from components import versioned_store

    order = []
    real_copy = versioned_store._fileio

    class RecordingFileIO:
        def __getattr__(self, name):
            return getattr(real_copy(), name)

        def copy(self, source, target, overwrite=False):
            order.append(target.rsplit("/", 1)[-1])
            return real_copy().copy(source, target, overwrite=overwrite)

        def open(self, path, mode="r"):
            if "w" in mode:
                order.append(path.rsplit("/", 1)[-1])
            return real_copy().open(path, mode)

    monkeypatch.setattr(versioned_store, "_fileio", RecordingFileIO)
    monkeypatch.setattr(versioned_store, "is_remote", lambda path: True)  # take the object-store path, on disk
    base = tmp_path / "remote"
    serving_pusher.copy_saved_model(str(saved_model), str(base), 1, {"model_uri": "m"})
    assert order[-2:] == ["saved_model.pb", "imagepipe_push.json"]
    assert len(order) > 3
    monkeypatch.undo()
    loaded = tf.saved_model.load(str(base / "1"))
    assert float(loaded.signatures["serving_default"](tf.constant([3.0]))["output_0"][0]) == 3.0
    assert serving_pusher.store(str(base)).find("model_uri", "m") == 1
