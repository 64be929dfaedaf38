"""{SPAN} in data.root: the newest data drop, or the newest N, are found and read."""
import pytest
from tfx.components.example_gen import utils
from tfx.proto import example_gen_pb2
from tfx.utils import proto_utils

from components.image_example_gen import spans
from components.image_example_gen.folders import ImageFolderError, scan_span_folders
from imagepipe.pipeline import split_input_pattern
from tests.conftest import encode, gradient


def test_span_root_splits_into_base_and_pattern():
    assert split_input_pattern("/d/digits") == ("/d/digits", "*/*")
    assert split_input_pattern("/d/digits/span-{SPAN}") == ("/d/digits", "span-{SPAN}/*/*")
    assert split_input_pattern("gs://b/d/span-{SPAN}/") == ("gs://b/d", "span-{SPAN}/*/*")


def test_the_newest_span_is_selected(tmp_path):
    for span in (1, 2, 10):
        folder = tmp_path / f"span-{span}" / "cats"
        folder.mkdir(parents=True)
        (folder / "a.png").write_bytes(encode(gradient(4, 4, 1), "PNG"))
    base, pattern = split_input_pattern(str(tmp_path / "span-{SPAN}"))
    split = example_gen_pb2.Input.Split(name="images", pattern=pattern)
    fingerprint, span, version = utils.calculate_splits_fingerprint_span_and_version(base, [split])
    assert span == 10
    assert "num_files:1" in fingerprint


def _write_spans(root, spans, classes=("cats", "dogs")):
    for span in spans:
        for name in classes:
            folder = root / f"span-{span}" / name
            folder.mkdir(parents=True)
            (folder / f"{name}-{span}.png").write_bytes(encode(gradient(4, 4, 1), "PNG"))


def test_spans_are_selected_newest_first_up_to_the_resolved_one(tmp_path):
    _write_spans(tmp_path, (1, 2, 3, 10))
    (tmp_path / "span-x").mkdir()  # not a span number: ignored
    base, pattern = str(tmp_path), "span-{SPAN}/*/*"
    assert spans.select_spans(base, pattern, 10, 1) == [(10, "span-10")]
    assert spans.select_spans(base, pattern, 10, 2) == [(3, "span-3"), (10, "span-10")]
    assert spans.select_spans(base, pattern, 10, 0) == [(1, "span-1"), (2, "span-2"), (3, "span-3"), (10, "span-10")]
    assert spans.select_spans(base, pattern, 2, 0) == [(1, "span-1"), (2, "span-2")]


def test_the_driver_fingerprints_every_selected_span(tmp_path):
    _write_spans(tmp_path, (1, 2))
    pattern = "span-{SPAN}/*/*"

    def resolve(span_count):
        properties = {
            "input_base": str(tmp_path),
            "input_config": proto_utils.proto_to_json(example_gen_pb2.Input(
                splits=[example_gen_pb2.Input.Split(name="images", pattern=pattern)])),
            spans.SPAN_COUNT_KEY: span_count,
            spans.SPAN_PATTERN_KEY: pattern,
        }
        return spans.SpanRangeDriver(metadata_handle=None).resolve_exec_properties(properties, None, None)

    latest, both = resolve(1), resolve(2)
    assert latest["span"] == both["span"] == 2
    assert "num_files:2" in latest["input_fingerprint"]  # the newest span's two files only
    assert "split:span 1,num_files:2" in both["input_fingerprint"]
    assert "split:span 2,num_files:2" in both["input_fingerprint"]
    # A changed older span changes the fingerprint only when it is read.
    (tmp_path / "span-1" / "cats" / "new.png").write_bytes(encode(gradient(4, 4, 1), "PNG"))
    assert resolve(1)["input_fingerprint"] == latest["input_fingerprint"]
    assert resolve(2)["input_fingerprint"] != both["input_fingerprint"]


def test_spans_read_together_must_have_the_same_classes(tmp_path):
    _write_spans(tmp_path, (1,))
    _write_spans(tmp_path, (2,), classes=("cats", "dogs", "birds"))
    with pytest.raises(ImageFolderError, match="between data spans span-1 and span-2 .added: birds; removed: none"):
        scan_span_folders(str(tmp_path), ["span-1", "span-2"], "unlabeled")
    classes, _, files, _ = scan_span_folders(str(tmp_path), ["span-2"], "unlabeled")
    assert classes == ["birds", "cats", "dogs"]
    assert files["cats"] == ["span-2/cats/cats-2.png"]
    classes, _, files, _ = scan_span_folders(str(tmp_path), ["span-1", "span-2"], "unlabeled",
                                             allow_class_changes=True)
    assert classes == ["birds", "cats", "dogs"] and len(files["cats"]) == 2
