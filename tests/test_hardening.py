"""A corpus of awkward files, generated here: each is ingested correctly, or
skipped and reported; nothing crashes, and everything ingested decodes."""
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from components import contracts
from components.image_example_gen import executor
from components.image_transform import decode_image
from tests.conftest import encode, gradient
from tests.test_image_example_gen import feature, run_transform


def _jpeg_with_orientation(array, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", exif=exif, quality=95)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    good, odd = root / "good", root / "odd ünïcode"
    for folder in (good, odd, root / "empty_class"):
        folder.mkdir()
    jpeg = encode(gradient(30, 40, 3), "JPEG")
    (good / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (good / "zero.jpg").write_bytes(b"")
    (good / "text.jpg").write_text("hello, I am not a picture")
    cmyk = io.BytesIO()
    Image.fromarray((gradient(12, 10, 3)), "RGB").convert("CMYK").save(cmyk, "JPEG")
    (good / "cmyk.jpg").write_bytes(cmyk.getvalue())
    (good / "sixteen_bit.png").write_bytes(encode((gradient(9, 9, 1).astype(np.uint16) * 257), "PNG", "I;16"))
    palette = Image.fromarray(gradient(10, 10, 3)).convert("P")
    buffer = io.BytesIO()
    palette.save(buffer, "PNG", transparency=0)
    (good / "palette_transparent.png").write_bytes(buffer.getvalue())
    frames = [Image.fromarray(gradient(8, 8, 3) // (i + 1)) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    (good / "animated.gif").write_bytes(buffer.getvalue())
    tall = np.zeros((40, 20, 3), np.uint8)
    tall[:10] = 255  # a white band at the top of a 40x20 (h x w) picture
    (good / "exif_rotated.jpg").write_bytes(_jpeg_with_orientation(tall, 6))  # stored sideways: turn 90 degrees
    buffer = io.BytesIO()
    Image.new("L", (10000, 10000)).save(buffer, "PNG")
    (good / "huge.png").write_bytes(buffer.getvalue())
    (odd / "file name with spaces.png").write_bytes(encode(gradient(8, 8, 3), "PNG"))
    (odd / "ñandú 猫.jpg").write_bytes(jpeg)
    (odd / ".hidden.jpg").write_bytes(jpeg)
    os.symlink(odd / "loop_a", odd / "loop_b")
    os.symlink(odd / "loop_b", odd / "loop_a")
    report = tmp_path_factory.mktemp("report")
    return root, report, run_transform(root, report)


def test_every_readable_file_is_ingested_with_its_class(corpus):
    _, _, examples = corpus
    assert sorted(examples) == sorted([
        "good/animated.gif", "good/cmyk.jpg", "good/exif_rotated.jpg", "good/palette_transparent.png",
        "good/sixteen_bit.png", "odd ünïcode/file name with spaces.png", "odd ünïcode/ñandú 猫.jpg",
    ])
    assert feature(examples["odd ünïcode/ñandú 猫.jpg"], "label_name") == "odd ünïcode".encode()


def test_every_unreadable_file_is_skipped_with_a_reason(corpus):
    _, report, _ = corpus
    skipped = {item["file"]: item["reason"] for item in executor.read_skipped(str(report))}
    assert set(skipped) == {"good/truncated.jpg", "good/zero.jpg", "good/text.jpg", "good/huge.png",
                            "odd ünïcode/loop_a", "odd ünïcode/loop_b"}
    assert "10000x10000 exceeds the 50,000,000-pixel limit" in skipped["good/huge.png"]
    assert "empty file" in skipped["good/zero.jpg"]
    assert "Too many levels of symbolic links" in skipped["odd ünïcode/loop_a"]


def test_hidden_files_and_empty_class_folders_are_left_out_and_named(corpus):
    root, report, examples = corpus
    assert not any(".hidden" in name for name in examples)
    summary = json.loads((report / contracts.INGEST_REPORT_FILE).read_text())
    assert summary["label_names"] == ["good", "odd ünïcode"]
    assert summary["empty_class_folders"] == ["empty_class"]


def test_exif_orientation_is_applied_once_at_ingestion(corpus):
    _, _, examples = corpus
    turned = examples["good/exif_rotated.jpg"]
    assert feature(turned, "format") == b"PNG"
    assert (feature(turned, "height"), feature(turned, "width")) == (20, 40)  # upright: wide, not tall
    pixels = tf.io.decode_image(feature(turned, "image")).numpy()
    # Orientation 6 means "turn 90 degrees clockwise to view": the top band ends up on the right.
    assert pixels[:, -5:].mean() > 200 and pixels[:, :5].mean() < 50


@pytest.mark.parametrize("channels", [1, 3])
def test_everything_ingested_decodes_to_the_model_input(corpus, channels):
    _, _, examples = corpus
    for name, example in examples.items():
        image = decode_image(tf.constant(feature(example, "image")), 16, 16, channels, None, False)
        assert image.shape == (16, 16, channels), name
        assert 0.0 <= float(tf.reduce_min(image)) and float(tf.reduce_max(image)) <= 1.0, name
