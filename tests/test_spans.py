"""{SPAN} in data.root: the newest data drop is found and read."""
from pathlib import Path

from tfx.components.example_gen import utils
from tfx.proto import example_gen_pb2

from pipelines.pipeline import split_input_pattern
from tests.conftest import encode, gradient


def test_span_root_splits_into_base_and_pattern():
    assert split_input_pattern(Path("/d/digits")) == ("/d/digits", "*/*")
    assert split_input_pattern(Path("/d/digits/span-{SPAN}")) == ("/d/digits", "span-{SPAN}/*/*")


def test_the_newest_span_is_selected(tmp_path):
    for span in (1, 2, 10):
        folder = tmp_path / f"span-{span}" / "cats"
        folder.mkdir(parents=True)
        (folder / "a.png").write_bytes(encode(gradient(4, 4, 1), "PNG"))
    base, pattern = split_input_pattern(tmp_path / "span-{SPAN}")
    split = example_gen_pb2.Input.Split(name="images", pattern=pattern)
    fingerprint, span, version = utils.calculate_splits_fingerprint_span_and_version(base, [split])
    assert span == 10
    assert "num_files:1" in fingerprint
