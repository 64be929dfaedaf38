"""A corpus of awkward files, generated here: each is ingested correctly, or
skipped and reported; nothing crashes, and everything ingested decodes."""
import io
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from components import contracts
from components.image_example_gen import executor
from components.image_transform import decode_image
from tests.components.test_image_example_gen import feature, run_transform
from tests.conftest import REPO, encode, gradient


def top_down_bmp(array: np.ndarray) -> bytes:
    """A valid BMP stored top row first (negative height): Pillow reads it; decode_image(dtype=float32) crashed."""
    data = bytearray(encode(array, "BMP"))
    height = struct.unpack_from("<i", data, 22)[0]
    rows = data[struct.unpack_from("<I", data, 10)[0]:]
    stride = len(rows) // height
    flipped = b"".join(bytes(rows[i * stride:(i + 1) * stride]) for i in reversed(range(height)))
    struct.pack_into("<i", data, 22, -height)
    return bytes(data[:struct.unpack_from("<I", data, 10)[0]]) + flipped


def png_of_size(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


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
    (good / "huge.png").write_bytes(png_of_size(10000, 10000))
    (good / "very_wide.png").write_bytes(png_of_size(40_000_000, 1))  # under 50 MP, over TensorFlow's side limit
    (good / "top_down.bmp").write_bytes(top_down_bmp(gradient(10, 12, 3)))
    buffer = io.BytesIO()
    Image.fromarray(gradient(9, 9, 1) > 128).convert("1").save(buffer, "BMP")
    (good / "one_bit.bmp").write_bytes(buffer.getvalue())  # Pillow reads it, TensorFlow's BMP decoder does not
    buffer = io.BytesIO()
    Image.fromarray(gradient(12, 16, 3)).save(buffer, "MPO", save_all=True,
                                              append_images=[Image.fromarray(gradient(12, 16, 3))])
    (good / "camera.mpo.jpg").write_bytes(buffer.getvalue())  # multi-picture JPEG, as phones write
    os.mkfifo(good / "named_pipe.jpg")  # reading it would block forever
    os.symlink("/dev/zero", good / "zeros.png")  # endless
    outside = tmp_path_factory.mktemp("outside") / "secret.png"
    outside.write_bytes(encode(gradient(8, 8, 3), "PNG"))
    os.symlink(outside, good / "link_out.png")  # a path out of the data root
    (good / "nested").mkdir()
    (good / "nested" / "deeper.png").write_bytes(encode(gradient(8, 8, 3), "PNG"))  # not read, and said so
    os.fsencode(good)
    with open(os.fsencode(good) + b"/latin1-\xe9t\xe9.png", "wb") as f:  # a name that is not UTF-8
        f.write(encode(gradient(8, 8, 3), "PNG"))
    os.makedirs(os.fsencode(root) + b"/caf\xe9")  # a class folder whose name is not UTF-8
    with open(os.fsencode(root) + b"/caf\xe9/a.png", "wb") as f:
        f.write(encode(gradient(8, 8, 3), "PNG"))
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
        "good/animated.gif", "good/camera.mpo.jpg", "good/cmyk.jpg", "good/exif_rotated.jpg", "good/one_bit.bmp",
        "good/palette_transparent.png", "good/sixteen_bit.png", "good/top_down.bmp",
        "odd ünïcode/file name with spaces.png", "odd ünïcode/ñandú 猫.jpg",
    ])
    assert feature(examples["odd ünïcode/ñandú 猫.jpg"], "label_name") == "odd ünïcode".encode()


def test_every_unreadable_file_is_skipped_with_a_reason(corpus):
    _, report, _ = corpus
    skipped = {item["file"]: item["reason"] for item in executor.read_skipped(str(report))}
    assert set(skipped) == {"good/truncated.jpg", "good/zero.jpg", "good/text.jpg", "good/huge.png",
                            "good/very_wide.png", "good/named_pipe.jpg", "good/zeros.png", "good/link_out.png",
                            "odd ünïcode/loop_a", "odd ünïcode/loop_b"}
    assert "10000x10000 exceeds the 50,000,000-pixel limit" in skipped["good/huge.png"]
    assert "side over the 65,535-pixel limit" in skipped["good/very_wide.png"]
    assert "outside the data root" in skipped["good/link_out.png"]
    assert "outside the data root" in skipped["good/zeros.png"]
    assert "not a regular file" in skipped["good/named_pipe.jpg"]
    assert "empty file" in skipped["good/zero.jpg"]
    assert "Too many levels of symbolic links" in skipped["odd ünïcode/loop_a"]


def test_what_is_not_read_is_named_with_the_reason(corpus):
    _, report, _ = corpus
    ignored = {item["file"]: item["reason"] for item in
               json.loads((report / contracts.INGEST_REPORT_FILE).read_text())["ignored"]}
    assert "a folder inside a class folder is not read" in ignored["good/nested"]
    assert "file name is not UTF-8" in ignored["good/latin1-\\xe9t\\xe9.png"]
    assert "folder name is not UTF-8" in ignored["caf\\xe9"]


def test_hidden_files_and_empty_class_folders_are_left_out_and_named(corpus):
    root, report, examples = corpus
    assert not any(".hidden" in name for name in examples)
    summary = json.loads((report / contracts.INGEST_REPORT_FILE).read_text())
    assert summary["label_names"] == ["good", "odd ünïcode"]
    assert summary["empty_class_folders"] == ["empty_class"]


def test_bmps_are_stored_as_png_that_tensorflow_decodes(corpus):
    _, _, examples = corpus
    for name, size in (("good/top_down.bmp", (10, 12)), ("good/one_bit.bmp", (9, 9))):
        assert feature(examples[name], "format") == b"PNG", name
        assert tuple(tf.io.decode_image(feature(examples[name], "image")).shape[:2]) == size, name
    top_down = tf.io.decode_image(feature(examples["good/top_down.bmp"], "image")).numpy()
    np.testing.assert_array_equal(top_down, gradient(10, 12, 3))  # the right way up


def test_a_file_over_the_size_limit_is_skipped_before_it_is_read(tmp_path, monkeypatch):
    from components.image_example_gen import decode

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "big.png").write_bytes(encode(gradient(64, 64, 3), "PNG"))
    monkeypatch.setattr(decode, "MAX_FILE_BYTES", 100)
    with pytest.raises(ValueError, match="bytes, over the 100-byte limit"):
        decode.check_file(str(tmp_path / "a" / "big.png"), str(tmp_path))


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


def test_a_top_down_bmp_decodes_without_crashing_the_process():
    # In a child process: the crash this guards against was a segfault, which would end pytest too.
    script = ("import sys, tensorflow as tf; from components.image_transform import decode_image; "
              "print(decode_image(tf.constant(sys.stdin.buffer.read()), 28, 28, 1).shape)")
    result = subprocess.run([sys.executable, "-c", script], input=top_down_bmp(gradient(10, 12, 3)),
                            capture_output=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert b"(28, 28, 1)" in result.stdout


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "top-down BMP"])
def test_the_serving_graph_reads_every_formats_size_from_its_header(fmt):
    from components.image_transform import header_size

    array = gradient(37, 53, 3)
    data = top_down_bmp(array) if fmt == "top-down BMP" else encode(array, fmt)
    assert header_size(tf.constant(data)).numpy().tolist() == [37, 53]


@pytest.mark.parametrize("width, height", [(20_000, 20_000), (40_000_000, 1)])
def test_an_image_over_the_limits_is_an_error_before_it_is_decoded(width, height):
    import time

    data = png_of_size(width, height)
    started = time.monotonic()
    with pytest.raises(tf.errors.InvalidArgumentError, match="image too large"):
        decode_image(tf.constant(data), 28, 28, 1)
    assert time.monotonic() - started < 30  # decoding 400 megapixels would take far longer (and gigabytes)


def damaged_jpegs(count: int, seed: int = 0) -> list:
    """Truncated, overwritten and cut JPEGs (baseline, progressive, 4:4:4 and grayscale) of two photos."""
    import random

    from sklearn.datasets import load_sample_images

    originals = []
    for photo in load_sample_images().images:
        image = Image.fromarray(photo).resize((160, 120))
        for options, mode in [({"quality": 90}, "RGB"), ({"quality": 75, "progressive": True}, "RGB"),
                              ({"quality": 95, "subsampling": 0}, "RGB"), ({}, "L")]:
            buffer = io.BytesIO()
            image.convert(mode).save(buffer, "JPEG", **options)
            originals.append(buffer.getvalue())
    rng = random.Random(seed)
    damaged = []
    for k in range(count):
        data = bytearray(originals[k % len(originals)])
        if k % 4 == 0:  # cut off anywhere
            data = data[:rng.randint(2, len(data) - 1)]
        elif k % 4 == 1:  # a few bytes of the compressed data overwritten
            for _ in range(rng.randint(1, 8)):
                data[rng.randint(len(data) // 4, len(data) - 3)] = rng.randint(0, 255)
        elif k % 4 == 2:  # one byte of the headers overwritten
            data[rng.randint(2, 600)] = rng.randint(0, 255)
        else:  # a run of bytes missing from the middle
            start = rng.randint(len(data) // 4, len(data) - 3)
            del data[start:start + rng.randint(1, 64)]
        damaged.append(bytes(data))
    return damaged


def test_the_jpeg_check_flags_exactly_what_a_full_decode_and_tensorflow_flag():
    """Ingestion decodes JPEGs at 1/8 scale (decode.inspect_image): on 1,600 damaged JPEGs it must flag
    every file a full Pillow decode flags and every file TensorFlow's decoder (the Trainer's) fails on."""
    from components.image_example_gen.decode import inspect_image

    def fails(check, data):
        try:
            check(data)
            return False
        except Exception:
            return True

    def full_decode(data):
        with Image.open(io.BytesIO(data)) as image:
            image.load()

    variants = damaged_jpegs(1600)
    flagged = [fails(inspect_image, data) for data in variants]
    assert 200 < sum(flagged) < 1400  # damage that breaks the file, and damage a decoder reads through
    assert flagged == [fails(full_decode, data) for data in variants]
    assert flagged == [fails(lambda data: tf.io.decode_jpeg(data).numpy(), data) for data in variants]
