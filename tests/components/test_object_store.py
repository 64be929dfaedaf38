"""Pushes to an object store, against a real GCS-compatible server (tests/fake_gcs.py): TensorFlow's own GCS
file system uploads, lists and reads; what the store holds is checked through its API, not through TF.

Object stores have no rename, so a version is published file by file with saved_model.pb (or the edge
manifest) and then the push record last; a version without its record is never found, listed, promoted
or rolled back to."""
import json
import os

import pytest
import tensorflow as tf

from components import serving_pusher, serving_rollout, versioned_store
from components.edge_pusher import bundle
from tests.conftest import imagepipe
from tests.fake_gcs import FakeGCS

BUCKET = "imagepipe-test"


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    with FakeGCS(tmp_path_factory.mktemp("fake-gcs"), buckets=[BUCKET]) as server:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in server.environment.items():
                patch.setenv(key, value)
            yield server


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def __call__(self, x):
            return {"output_0": 2.0 * x}

    path = str(tmp_path_factory.mktemp("model") / "saved_model")
    module = Doubler()
    tf.saved_model.save(module, path, signatures={"serving_default": module.__call__})
    return path


def test_a_serving_push_lands_whole_with_saved_model_pb_and_the_record_uploaded_last(gcs, saved_model):
    base = f"gs://{BUCKET}/run1/serving/doubler"
    serving_pusher.copy_saved_model(saved_model, base, 1, {"model_uri": "model-a", "version": 1})

    stored = gcs.objects(BUCKET, "run1/serving/doubler/1/")
    files = {name: item for name, item in stored.items() if not name.endswith("/")}
    by_upload = sorted(files, key=lambda name: int(files[name]["generation"]))
    assert by_upload[-2:] == ["run1/serving/doubler/1/saved_model.pb",
                              "run1/serving/doubler/1/assets.extra/imagepipe_push.json"], by_upload
    assert any(name.endswith("variables/variables.index") for name in files), sorted(files)
    assert serving_pusher.store(base).versions() == [1]
    assert serving_pusher.store(base).find("model_uri", "model-a") == 1
    # What TF Serving does with --model_base_path=gs://...: load the version from the store.
    loaded = tf.saved_model.load(f"{base}/1")
    assert float(loaded.signatures["serving_default"](tf.constant([3.0]))["output_0"][0]) == 6.0


def test_a_push_cut_off_mid_upload_is_never_listed_promoted_or_rolled_back_to(gcs, saved_model, monkeypatch):
    serving = f"gs://{BUCKET}/run2/serving"
    base = f"{serving}/doubler"
    serving_pusher.copy_saved_model(saved_model, base, 1, {"model_uri": "model-a"})
    serving_rollout.record_push(serving, "doubler", 1)

    from tfx.dsl.io import fileio
    real_copy, copied = fileio.copy, []

    def copy_then_die(source, target, overwrite=False):
        if target.startswith("gs://"):  # the uploads; the local staging copy goes through too
            if len(copied) == 2:
                raise ConnectionResetError("upload cut off")
            copied.append(target)
        return real_copy(source, target, overwrite=overwrite)

    monkeypatch.setattr(fileio, "copy", copy_then_die)
    with pytest.raises(ConnectionResetError):
        serving_pusher.copy_saved_model(saved_model, base, 2, {"model_uri": "model-b"})
    monkeypatch.undo()
    assert len(gcs.objects(BUCKET, "run2/serving/doubler/2/")) >= 2  # half a version is in the store...
    store = serving_pusher.store(base)
    assert store.versions() == [1] and store.find("model_uri", "model-b") is None  # ...but not a version
    assert store.next_version() == 3  # its number is never reused

    serving_pusher.copy_saved_model(saved_model, base, 3, {"model_uri": "model-c"})
    rollout = serving_rollout.record_push(serving, "doubler", 3)
    assert (rollout.stable, rollout.canary, rollout.base_path) == (1, 3, base)
    config = versioned_store.read_text(f"{serving}/models.config")
    assert f'base_path: "{base}"' in config and "value: 3" in config, config
    with pytest.raises(serving_rollout.RolloutError, match="version 2 is not a pushed version .*pushed: 1, 3"):
        serving_rollout.promote(serving, version=2)
    assert serving_rollout.promote(serving).stable == 3
    assert serving_rollout.rollback(serving).stable == 1  # skips the half version 2
    assert serving_rollout.read(serving).stable == 1


def test_an_edge_bundle_is_published_and_latest_follows_it(gcs):
    base = f"gs://{BUCKET}/run3/edge/doubler"
    bundle.write_bundle(base, 1, {"model_int8.tflite": b"\x01\x02", "model_data.cc": "// model"}, {"version": 1})
    bundle.write_bundle(base, 2, {"model_int8.tflite": b"\x03", "model_data.cc": "// model 2"}, {"version": 2})
    stored = gcs.objects(BUCKET, "run3/edge/doubler/")
    version_two = {name: item for name, item in stored.items() if name.startswith("run3/edge/doubler/2/")}
    assert max(version_two, key=lambda name: int(version_two[name]["generation"])).endswith("/manifest.json")
    assert versioned_store.read_text(f"{base}/latest").strip() == "2"
    manifest = json.loads(versioned_store.read_text(f"{base}/2/manifest.json"))
    assert manifest["files"]["model_int8.tflite"]["bytes"] == 1
    with pytest.raises(FileExistsError, match="never overwritten"):
        bundle.write_bundle(base, 2, {"model_int8.tflite": b"\x04"}, {"version": 2})


def test_the_environment_reaches_the_store_and_not_the_internet(gcs):
    # Guards the harness itself: TF's requests go through the proxy to the fake store.
    assert os.environ["https_proxy"].startswith("http://127.0.0.1:")
    tf.io.gfile.makedirs(f"gs://{BUCKET}/probe")
    with tf.io.gfile.GFile(f"gs://{BUCKET}/probe/hello.txt", "w") as f:
        f.write("hello")
    assert gcs.objects(BUCKET, "probe/")["probe/hello.txt"]["size"] == "5"


def test_promote_and_serving_work_on_a_bucket_from_the_command_line(gcs, saved_model):
    serving = f"gs://{BUCKET}/run4/doubler/serving"  # <output_dir>/<pipeline>/serving, as a compiled job pushes
    for version in (1, 2):
        serving_pusher.copy_saved_model(saved_model, f"{serving}/doubler", version, {"model_uri": f"m{version}"})
        serving_rollout.record_push(serving, "doubler", version)
    promoted = imagepipe("promote", "doubler", "--output-dir", f"gs://{BUCKET}/run4", timeout=120)
    assert promoted.returncode == 0, promoted.stderr[-2000:]
    assert f"{serving}/models.config: stable 2, canary 2" in promoted.stdout, promoted.stdout
    shown = imagepipe("serving", "doubler", "--output-dir", f"gs://{BUCKET}/run4", timeout=120)
    assert "versions [1, 2], stable 2, canary 2" in shown.stdout, shown.stdout + shown.stderr[-2000:]
