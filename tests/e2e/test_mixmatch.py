"""pipelines/digits-mixmatch.yaml end to end through the real pipeline, on a small folder.

ImageExampleGen keeps 5 labels per class in the train split and writes the rest
with label -1; SchemaGen and the ExampleValidator accept them; the MixMatch
Trainer learns from both and its averaged model is evaluated, blessed and pushed.
"""
import json
import re
from pathlib import Path

import pytest
import tensorflow as tf
import yaml

from imagepipe import results
from imagepipe.datasets import write_digits
from tests.conftest import REPO, imagepipe

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
PER_CLASS, LABELS_PER_CLASS, UNLABELED_FILES = 30, 5, 20


def test_mixmatch_trains_on_labelled_and_unlabelled_digits_and_is_pushed(tmp_path):
    write_digits(tmp_path / "data", per_class=PER_CLASS)
    # Unlabelled images from a folder too (copies are enough for the wiring): all must land in the train split.
    unlabeled = tmp_path / "data" / "unlabeled"
    unlabeled.mkdir()
    for i, image in enumerate(sorted((tmp_path / "data" / "7").glob("*.png"))[:UNLABELED_FILES]):
        (unlabeled / f"u{i}.png").write_bytes(image.read_bytes())
    spec = yaml.safe_load((REPO / "pipelines" / "digits-mixmatch.yaml").read_text())
    spec["data"]["root"] = str(tmp_path / "data")
    spec["data"]["labels_per_class"] = LABELS_PER_CLASS
    spec["output_dir"] = str(tmp_path / "outputs")
    spec["trainer"]["epochs"] = 2
    spec["trainer"]["batch_size"] = 16
    spec["trainer"]["hyperparameters"]["steps_per_epoch"] = 15
    spec["evaluation"]["min_accuracy"] = 0.0  # about the wiring; bench/mixmatch.py measures accuracy
    spec_path = tmp_path / "digits-mixmatch.yaml"
    spec_path.write_text(yaml.safe_dump(spec))

    result = imagepipe("run", str(spec_path), "--json")
    assert result.returncode == results.EXIT_PUSHED, result.stderr[-4000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "pushed" and summary["files_ingested"] == 10 * PER_CLASS + UNLABELED_FILES

    tfx_root = tmp_path / "outputs" / "digits-mixmatch" / "tfx"
    report = json.loads(next(tfx_root.glob("ImageExampleGen/ingest_report/*/ingest_report.json")).read_text())
    assert report["labels_per_class"] == LABELS_PER_CLASS
    examples = next(tfx_root.glob("ImageExampleGen/examples/*"))
    labels = {}
    for split in ("train", "eval"):
        records = tf.data.TFRecordDataset(tf.io.gfile.glob(str(examples / f"Split-{split}" / "*")), compression_type="GZIP")
        labels[split] = [tf.train.Example.FromString(r.numpy()).features.feature["label"].int64_list.value[0]
                         for r in records]
    assert sum(label >= 0 for label in labels["train"]) == 10 * LABELS_PER_CLASS
    assert labels["train"].count(-1) == report["labels_dropped"] + UNLABELED_FILES
    assert report["labels_dropped"] > 0
    assert min(labels["eval"]) >= 0

    history = json.loads(next(tfx_root.glob("Trainer/model_run/*/history.json")).read_text())
    assert len(history["unlabeled_loss"]) == 2 and len(history["val_accuracy"]) == 2
    # The moving average of the epoch that scored best on the eval split is the one kept (and pushed).
    training = json.loads(next(tfx_root.glob("Trainer/model_run/*/training_summary.json")).read_text())
    assert training["epochs_run"] == 2
    assert history["val_accuracy"][training["kept_epoch"] - 1] == max(history["val_accuracy"])
    model = tf.saved_model.load(str(tmp_path / "outputs" / "digits-mixmatch" / "serving" / "digits-mixmatch" / "1"))
    image = next((tmp_path / "data" / "3").glob("*.png")).read_bytes()
    outputs = model.signatures["serving_default"](image_bytes=tf.constant([image]))
    assert outputs["probabilities"].shape == (1, 10)

    # The report: the data line names the data root; the confusion matrix is over the model's ten classes
    # in label order ("(unlabelled)" sorted first once, shifting every label by one).
    html = Path(summary["report"]).read_text()
    assert f"10 classes, from {tmp_path / 'data'};" in html
    rows = re.findall(r'<tr><td class="l">([^<]+)</td><td>[-0-9.]+</td><td>[-0-9.]+</td><td>\d+</td></tr>', html)
    assert rows == [str(d) for d in range(10)], rows


def test_mixmatch_without_unlabelled_images_stops_with_the_fix(tmp_path):
    write_digits(tmp_path / "data", per_class=10)
    spec = yaml.safe_load((REPO / "pipelines" / "digits-mixmatch.yaml").read_text())
    spec["data"]["root"] = str(tmp_path / "data")
    del spec["data"]["labels_per_class"]  # and no unlabeled/ folder
    spec["output_dir"] = str(tmp_path / "outputs")
    spec["trainer"]["batch_size"] = 8
    spec_path = tmp_path / "digits-mixmatch.yaml"
    spec_path.write_text(yaml.safe_dump(spec))

    result = imagepipe("run", str(spec_path))
    assert result.returncode == results.EXIT_FAILED, result.stderr[-4000:]
    assert "found no unlabelled images" in result.stderr and "data.labels_per_class" in result.stderr, result.stderr[-4000:]
    assert not (tmp_path / "outputs" / "digits-mixmatch" / "serving" / "digits-mixmatch").exists()
