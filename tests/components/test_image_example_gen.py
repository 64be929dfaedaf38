"""ImageExampleGen's executor on a small folder of JPEG, PNG, GIF, BMP, grayscale, RGBA and broken files."""
import json
import pathlib
import time

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing.util import assert_that

from components import contracts
from components.image_example_gen import decode, example_proto, executor, folders, progress
from tests.conftest import REPO, encode, gradient


def run_transform(root, report_dir, split_pattern="*/*", with_splits=False, **span_properties):
    """Runs ImageFoldersToExample; returns {filename: tf.Example} (and {filename: split name})."""
    exec_properties = {
        "input_base": str(root),
        executor.UNLABELED_DIR_KEY: "unlabeled",
        executor._REPORT_DIR_KEY: str(report_dir),
        "output_config": output_config_json(),
        **span_properties,
    }
    output = report_dir / "examples.tfrecord"

    def keep_split(name):
        def keep(examples):
            # assert_that runs this in a Beam worker: hand the examples back through a file.
            with tf.io.TFRecordWriter(f"{output}.{name}") as writer:
                for example in examples:
                    writer.write(example)
        return keep

    with beam.Pipeline() as pipeline:
        examples_by_split = pipeline | executor.ImageFoldersToExample(exec_properties, split_pattern)
        for name, examples in examples_by_split.items():
            assert_that(examples, keep_split(name), label=f"Keep[{name}]")
    examples, split = {}, {}
    for name in examples_by_split:
        for record in tf.data.TFRecordDataset(f"{output}.{name}"):
            example = tf.train.Example.FromString(record.numpy())
            filename = example.features.feature["filename"].bytes_list.value[0].decode()
            examples[filename], split[filename] = example, name
    return (examples, split) if with_splits else examples


def feature(example, name):
    value = example.features.feature[name]
    return value.int64_list.value[0] if value.HasField("int64_list") else value.bytes_list.value[0]


def test_examples_have_the_contract_features_and_labels(mixed_image_folder, tmp_path):
    examples = run_transform(mixed_image_folder, tmp_path)
    assert sorted(examples) == [
        "cats/gray.png", "cats/rgb.jpg", "dogs/anim.gif", "dogs/bitmap.bmp", "dogs/png_named.jpg", "dogs/rgba.png",
    ]
    rgb = examples["cats/rgb.jpg"]
    assert (feature(rgb, "label"), feature(rgb, "label_name")) == (0, b"cats")
    assert (feature(rgb, "height"), feature(rgb, "width"), feature(rgb, "channels")) == (30, 40, 3)
    assert feature(rgb, "image") == (mixed_image_folder / "cats" / "rgb.jpg").read_bytes()
    assert feature(examples["cats/gray.png"], "channels") == 1
    assert feature(examples["dogs/rgba.png"], "channels") == 4
    assert feature(examples["dogs/rgba.png"], "label") == 1
    # Format from the content, not the extension.
    assert feature(examples["dogs/png_named.jpg"], "format") == b"PNG"
    assert feature(examples["dogs/bitmap.bmp"], "format") == b"PNG"  # every BMP is stored as PNG (TensorFlow reads some BMPs only)
    decoded = tf.io.decode_image(feature(examples["dogs/png_named.jpg"], "image"))
    assert decoded.shape == (10, 12, 3)


def test_undecodable_files_are_skipped_and_reported(mixed_image_folder, tmp_path):
    run_transform(mixed_image_folder, tmp_path)
    skipped = {item["file"]: item["reason"] for item in executor.read_skipped(str(tmp_path))}
    assert sorted(skipped) == ["dogs/empty.png", "dogs/notes.jpg", "dogs/truncated.jpg"]
    assert "empty file" in skipped["dogs/empty.png"]
    assert "truncated" in skipped["dogs/truncated.jpg"].lower()
    report = contracts.read_ingest_report(str(tmp_path))
    assert report["label_names"] == ["cats", "dogs"]
    assert report["files_per_class"] == {"cats": 2, "dogs": 7}
    assert json.loads((tmp_path / contracts.LABEL_NAMES_FILE).read_text()) == ["cats", "dogs"]


def test_unlabeled_folder_is_not_a_class(mixed_image_folder, tmp_path):
    (mixed_image_folder / "unlabeled").mkdir()
    (mixed_image_folder / "unlabeled" / "x.png").write_bytes((mixed_image_folder / "cats" / "gray.png").read_bytes())
    (mixed_image_folder / "empty_class").mkdir()
    examples = run_transform(mixed_image_folder, tmp_path)
    assert (feature(examples["unlabeled/x.png"], "label"), feature(examples["unlabeled/x.png"], "label_name")) == (-1, b"")
    report = contracts.read_ingest_report(str(tmp_path))
    assert report["label_names"] == ["cats", "dogs"]
    assert report["empty_class_folders"] == ["empty_class"]


def test_a_root_without_class_folders_fails_clearly(tmp_path):
    (tmp_path / "loose.png").write_bytes(b"x")
    with pytest.raises(folders.ImageFolderError, match="no class folder with images"):
        folders.scan_class_folders(str(tmp_path), "unlabeled")
    with pytest.raises(folders.ImageFolderError, match="is not a folder"):
        folders.scan_class_folders(str(tmp_path / "missing"), "unlabeled")


def test_decompression_bombs_are_refused(monkeypatch):
    from tests.conftest import encode, gradient

    monkeypatch.setattr(decode, "MAX_PIXELS", 100)
    with pytest.raises(ValueError, match="pixel limit"):
        decode.inspect_image(encode(gradient(20, 20, 1), "PNG"))


@pytest.mark.parametrize("span_count, expected_spans", [(1, ["span-3"]), (2, ["span-2", "span-3"]),
                                                        (0, ["span-1", "span-2", "span-3"])])
def test_the_newest_spans_are_read_together(tmp_path, span_count, expected_spans):
    data = tmp_path / "data"
    for span in (1, 2, 3, 4):  # span 4 is newer than the one the driver resolved: not read
        for name in ("cats", "dogs"):
            (data / f"span-{span}" / name).mkdir(parents=True)
            (data / f"span-{span}" / name / "a.png").write_bytes(encode(gradient(4, 4, 1), "PNG"))
    report = tmp_path / "report"
    report.mkdir()
    examples = run_transform(data, report, "span-3/*/*", span=3, span_count=span_count,
                             span_pattern="span-{SPAN}/*/*")
    assert sorted(examples) == [f"{span}/{name}/a.png" for span in expected_spans for name in ("cats", "dogs")]
    assert {feature(ex, "label_name") for ex in examples.values()} == {b"cats", b"dogs"}
    assert contracts.read_ingest_report(str(report))["span_folders"] == expected_spans


def test_a_class_added_in_the_newest_drop_stops_ingestion_unless_the_spec_allows_it(tmp_path):
    data = tmp_path / "data"
    for span, classes in ((1, ("cats", "dogs")), (2, ("birds", "cats", "dogs"))):
        for name in classes:
            (data / f"span-{span}" / name).mkdir(parents=True)
            (data / f"span-{span}" / name / "a.png").write_bytes(encode(gradient(4, 4, 1), "PNG"))
    report = tmp_path / "report"
    report.mkdir()
    latest_only = dict(span=2, span_count=1, span_pattern="span-{SPAN}/*/*")
    with pytest.raises(folders.ImageFolderError, match="added: birds.*data.allow_class_changes: true"):
        run_transform(data, report, "span-2/*/*", **latest_only)
    examples = run_transform(data, report, "span-2/*/*", allow_class_changes=1, **latest_only)
    assert {feature(ex, "label_name"): feature(ex, "label") for ex in examples.values()} == {
        b"birds": 0, b"cats": 1, b"dogs": 2}


def test_workers_counts_add_up_to_every_file_decoded_or_skipped(mixed_image_folder, tmp_path):
    lines = []
    with progress.watch(lambda: contracts.read_ingest_report(str(tmp_path))["files_found"], lines.append,
                        interval=0.01) as folder:
        run_transform(mixed_image_folder, tmp_path, **{executor._PROGRESS_DIR_KEY: folder})
        counted = progress.total(folder)
        time.sleep(0.1)  # one more report after the last count
    assert counted == 9  # 6 ingested + 3 skipped: every file is counted once
    assert lines[-1].startswith("imagepipe ingested 9/9 files (100%")
    assert not pathlib.Path(folder).exists()


def test_a_worker_that_cannot_reach_the_progress_folder_keeps_working(tmp_path):
    count = progress.WorkerCount(str(tmp_path / "not-on-this-machine"), interval=0)
    count.add(3)
    count.add(2)  # no error, no file
    assert not (tmp_path / "not-on-this-machine").exists()
    written = progress.WorkerCount(str(tmp_path), interval=3600)
    written.add(5)  # the first add writes; later ones wait for the interval or a flush
    written.add(1)
    assert progress.total(str(tmp_path)) == 5
    written.flush()
    assert progress.total(str(tmp_path)) == 6


def test_the_first_count_is_written_on_a_machine_booted_seconds_ago(tmp_path, monkeypatch):
    # time.monotonic() counts from boot: 5 s after boot, 5 - 0 < interval must not hold the first write back.
    monkeypatch.setattr(progress.time, "monotonic", lambda: 5.0)
    count = progress.WorkerCount(str(tmp_path), interval=60)
    count.add(4)
    assert progress.total(str(tmp_path)) == 4


def digits_folder(root, classes=3, per_class=20):
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            (root / f"c{c}" / f"{i:02d}.png").write_bytes(encode(gradient(6, 6, 1), "PNG"))
    return root


def output_config_json():
    from components.image_example_gen.component import ImageExampleGen

    # The component stores its output config as JSON, exactly as the executor receives it.
    component = ImageExampleGen(input_base="/unused", input_pattern="*/*", train_buckets=4, eval_buckets=1)
    return component.exec_properties["output_config"]


def test_labels_per_class_keeps_that_many_labels_in_the_train_split_only(tmp_path):
    root = digits_folder(tmp_path / "images")
    config = output_config_json()
    examples, split = run_transform(root, tmp_path, labels_per_class=2, labels_seed=7, output_config=config,
                                    with_splits=True)
    assert len(examples) == 60  # nothing is left out, only labels are
    assert set(split.values()) == {"train", "eval"}
    for c in range(3):
        train = [n for n in examples if n.startswith(f"c{c}/") and split[n] == "train"]
        labelled = [n for n in train if feature(examples[n], "label") == c]
        assert len(labelled) == 2
        assert all((feature(examples[n], "label"), feature(examples[n], "label_name")) == (-1, b"")
                   for n in set(train) - set(labelled))
    assert all(feature(ex, "label") >= 0 for n, ex in examples.items() if split[n] == "eval")
    report = contracts.read_ingest_report(str(tmp_path))
    assert report["labels_per_class"] == 2
    assert report["labels_dropped"] == sum(1 for n in examples if split[n] == "train") - 6


def test_the_kept_labels_depend_on_the_seed_not_on_the_listing_order(tmp_path):
    digits_folder(tmp_path / "images")
    config = output_config_json()
    files = {f"c{c}": sorted(f"c{c}/{i:02d}.png" for i in range(20)) for c in range(3)}
    dropped = executor.labels_to_drop(files, ["c0", "c1", "c2"], 2, 7, config)
    reversed_listing = {name: list(reversed(paths)) for name, paths in files.items()}
    assert executor.labels_to_drop(reversed_listing, ["c0", "c1", "c2"], 2, 7, config) == dropped
    assert executor.labels_to_drop(files, ["c0", "c1", "c2"], 2, 8, config) != dropped
    # A class with fewer train images than asked for keeps them all.
    assert executor.labels_to_drop(files, ["c0", "c1", "c2"], 100, 7, config) == []


def test_split_index_is_tfx_partition_on_the_filename_feature():
    from tfx.components.example_gen import base_example_gen_executor

    split_config = executor._parsed_output_config(output_config_json()).split_config
    buckets = executor.cumulative_buckets(split_config)
    paths = [f"c{i % 7}/{i:05d}.jpg" for i in range(500)] + ["ünïcode/é.png", "a b/c d.JPG"]
    ours = [decode.split_index(path, buckets) for path in paths]
    theirs = [base_example_gen_executor._PartitionFn(
        tf.train.Example(features=tf.train.Features(feature={
            "filename": tf.train.Feature(bytes_list=tf.train.BytesList(value=[path.encode("utf-8")]))})),
        len(buckets), buckets, split_config) for path in paths]
    assert ours == theirs
    assert 0.7 < ours.count(0) / len(ours) < 0.9  # 4 train buckets of 5


def test_unlabelled_images_all_go_to_the_train_split(tmp_path):
    root = digits_folder(tmp_path / "images", classes=2, per_class=40)
    (root / "unlabeled").mkdir()
    for path in (root / "c0").iterdir():
        (root / "unlabeled" / path.name).write_bytes(path.read_bytes())
    examples, split = run_transform(root, tmp_path, with_splits=True)
    config = output_config_json()
    # Labelled, these names spread over both splits as TFX's hash puts them; unlabelled, none is evaluated.
    assert {split[f"c0/{i:02d}.png"] for i in range(40)} == {"train", "eval"}
    assert all(split[f"c0/{i:02d}.png"] == executor.split_of(f"c0/{i:02d}.png", config) for i in range(40))
    assert {executor.split_of(f"unlabeled/{i:02d}.png", config) for i in range(40)} == {"train", "eval"}
    assert {split[f"unlabeled/{i:02d}.png"] for i in range(40)} == {"train"}
    assert {feature(examples[f"unlabeled/{i:02d}.png"], "label") for i in range(40)} == {-1}


def test_examples_built_without_tensorflow_are_tf_train_examples():
    ours = example_proto.Example(features=example_proto.Features(feature={
        "image": example_proto.bytes_feature(b"\x00\xff\xd8 bytes"), "label": example_proto.int_feature(-1),
        "height": example_proto.int_feature(2 ** 40)}))
    theirs = tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"\x00\xff\xd8 bytes"])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[-1])),
        "height": tf.train.Feature(int64_list=tf.train.Int64List(value=[2 ** 40]))}))
    assert tf.train.Example.FromString(ours.SerializeToString()) == theirs
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)
    assert example_proto.Example.FromString(theirs.SerializeToString()) == ours


def test_the_decoding_workers_import_neither_tensorflow_nor_tfx():
    import subprocess
    import sys

    code = ("import sys, components.image_example_gen.decode; "
            "print(sorted(m for m in ('tensorflow', 'tfx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO)
    assert out.stdout.strip() == "[]"
