"""What ImageExampleGen's Beam workers run: one image file -> one serialized tf.Example.

Each file is read, decoded (so that a truncated or corrupt file is caught
here, not in the Trainer), turned upright when its EXIF says so, and
assigned to its split by TFX's hash of its path. Files are identified by their
content (JPEG, PNG, GIF, BMP), never by their extension.

This module imports neither TensorFlow nor TFX: every Beam worker process
imports it before its first image, and those imports cost each worker about
6 s of start-up (bench/ingest.py). The executor, in the launching process,
does the rest.
"""
from __future__ import annotations

import bisect
import hashlib
import io
import json
import os
import posixpath
import stat
from typing import Any, Dict, Iterable, List, Tuple

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from PIL import Image, ImageOps

from components.contracts import (CHANNELS_KEY, FILENAME_KEY, FORMAT_KEY, HEIGHT_KEY, IMAGE_KEY, LABEL_KEY,
                                  LABEL_NAME_KEY, MAX_FILE_BYTES, MAX_PIXELS, MAX_SIDE, UNLABELLED, WIDTH_KEY)
from components.image_example_gen import progress
from components.image_example_gen.example_proto import Example, Features, bytes_feature, int_feature

SUPPORTED_FORMATS = ("JPEG", "PNG", "GIF", "BMP")
# Multi-picture JPEGs (phones, cameras): a JPEG whose first picture every JPEG decoder reads.
_JPEG_ALIASES = {"MPO": "JPEG"}
_EXIF_ORIENTATION = 0x0112
_MODE_CHANNELS = {"1": 1, "L": 1, "P": 3, "LA": 2, "PA": 4, "RGB": 3, "RGBA": 4, "CMYK": 4, "YCbCr": 3,
                  "I": 1, "I;16": 1, "I;16B": 1, "I;16L": 1, "F": 1}


def inspect_image(data: bytes) -> Tuple[str, int, int, int, bool]:
    """Returns (format, height, width, channels, needs re-encoding), decoding the whole image
    so that truncated or corrupt files are caught here. Limits (contracts.py) are checked from
    the header first, as the serving graph checks them.

    A JPEG is decoded at 1/8 scale (libjpeg's DCT scaling): every block's coefficients are still
    entropy-decoded, which is where a truncated or corrupt JPEG fails; what is skipped is the full
    inverse DCT and colour conversion, which cannot fail, and about half the CPU of a full decode.
    tests/components/test_hardening.py checks that it flags exactly the files a full decode flags."""
    if not data:
        raise ValueError("empty file")
    with Image.open(io.BytesIO(data)) as image:
        image_format = _JPEG_ALIASES.get(image.format, image.format)
        if image_format not in SUPPORTED_FORMATS:
            raise ValueError(f"unsupported format {image.format}; supported: {', '.join(SUPPORTED_FORMATS)}")
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ValueError(f"{width}x{height} exceeds the {MAX_PIXELS:,}-pixel limit")
        if max(width, height) > MAX_SIDE:
            raise ValueError(f"{width}x{height} has a side over the {MAX_SIDE:,}-pixel limit")
        mode = image.mode
        if mode == "P" and "transparency" in image.info:
            mode = "PA"
        turned = image_format == "JPEG" and image.getexif().get(_EXIF_ORIENTATION, 1) != 1
        if image_format == "JPEG":
            image.draft(image.mode, (-(-width // 8), -(-height // 8)))
        image.load()
    # TensorFlow's decoders ignore EXIF orientation, and its BMP decoder takes only some BMPs
    # (not 1-bit, for one; a top-down BMP crashed it as float): store what every decoder reads.
    return image_format, height, width, _MODE_CHANNELS.get(mode, 3), turned or image_format == "BMP"


def check_file(path: str, root: str, real_root: str | None = None) -> None:
    """Refuses what is not a regular file of at most MAX_FILE_BYTES inside the data root, before
    reading it: a named pipe would hang the read, a link to /dev/zero or a video exhaust memory.
    `real_root`: the root's realpath, when the caller has it already."""
    if "://" in path:  # object stores hold only objects; their size is in the listing
        size = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    else:
        real, real_root = os.path.realpath(path), real_root or os.path.realpath(root)
        if os.path.commonpath([real, real_root]) != real_root:
            raise ValueError(f"a link to {real}, outside the data root")
        status = os.stat(real)
        if not stat.S_ISREG(status.st_mode):
            raise ValueError("not a regular file (a pipe, device or socket)")
        size = status.st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit for one image")


def read_file(path: str) -> bytes:
    """At most MAX_FILE_BYTES + 1 bytes of a local file or an object. Python's own open() for local
    files: Beam's file system layer cost 65 us more per file, an eighth of a JPEG's decode."""
    if "://" in path:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            return f.read(MAX_FILE_BYTES + 1)
    with open(path, "rb") as f:  # read(n) allocates n bytes first: ask for what the file holds
        return f.read(min(os.fstat(f.fileno()).st_size, MAX_FILE_BYTES) + 1)


def upright(data: bytes) -> bytes:
    """An image stored as PNG (lossless) that every TensorFlow decoder reads, turned upright
    if its EXIF says it is rotated or mirrored (the one place EXIF can be applied)."""
    with Image.open(io.BytesIO(data)) as image:
        turned = ImageOps.exif_transpose(image)
        buffer = io.BytesIO()
        turned.save(buffer, format="PNG")
        return buffer.getvalue()


def split_index(relative_path: str, cumulative_buckets: List[int]) -> int:
    """The split TFX's ExampleGen puts an example in when it splits on the
    `filename` feature (base_example_gen_executor._PartitionFn: sha256 of the
    serialized feature, modulo the buckets); tests check it against TFX's own."""
    key = bytes_feature(relative_path.encode("utf-8")).SerializeToString(deterministic=True)
    return bisect.bisect(cumulative_buckets, int(hashlib.sha256(key).hexdigest(), 16) % cumulative_buckets[-1])


class ToExample(beam.DoFn):
    """A list of relative paths -> serialized tf.Examples, each in the output tagged with its
    split's name; undecodable files go to SKIPPED as JSON lines.

    Unlabelled images (the `unlabeled_dir` folder, or labels dropped by
    `labels_per_class`) all go to the train split: they cannot be evaluated
    (the Evaluator would count them as errors), and the train split is where a
    semi-supervised Trainer reads them."""

    SKIPPED = "skipped"

    def __init__(self, root: str, label_index: Dict[str, int], unlabeled_dir: str, split_names: List[str],
                 cumulative_buckets: List[int], progress_dir: str | None = None, drop_labels: Iterable[str] = ()):
        self._root = root
        self._label_index = label_index
        self._unlabeled_dir = unlabeled_dir
        self._split_names = split_names
        self._buckets = cumulative_buckets
        self._progress_dir = progress_dir
        self._drop_labels = frozenset(drop_labels)

    def setup(self):
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        self._real_root = None if "://" in self._root else os.path.realpath(self._root)
        self._count = progress.WorkerCount(self._progress_dir)
        self._ingested, self._skipped, self._reencoded = (
            beam.metrics.Metrics.counter("ImageExampleGen", name)
            for name in ("images_ingested", "images_skipped", "images_reencoded_as_png"))

    def finish_bundle(self):
        self._count.flush()

    def process(self, relative_paths: List[str]) -> Iterable[Any]:
        for relative_path in relative_paths:
            yield from self._to_example(relative_path)

    def _to_example(self, relative_path: str) -> Iterable[Any]:
        self._count.add()
        class_name = posixpath.basename(posixpath.dirname(relative_path))
        try:
            path = posixpath.join(self._root, relative_path)
            check_file(path, self._root, self._real_root)
            data = read_file(path)
            image_format, height, width, channels, reencode = inspect_image(data)
            if reencode:
                self._reencoded.inc()
                data = upright(data)
                image_format, height, width, channels, _ = inspect_image(data)
        except Exception as exc:  # any undecodable file is reported, never fatal
            self._skipped.inc()
            yield beam.pvalue.TaggedOutput(
                self.SKIPPED, json.dumps({"file": relative_path, "reason": f"{type(exc).__name__}: {exc}"})
            )
            return
        self._ingested.inc()
        is_unlabeled = class_name == self._unlabeled_dir or relative_path in self._drop_labels
        example = Example(features=Features(feature={
            IMAGE_KEY: bytes_feature(data),
            LABEL_KEY: int_feature(UNLABELLED if is_unlabeled else self._label_index[class_name]),
            LABEL_NAME_KEY: bytes_feature(b"" if is_unlabeled else class_name.encode("utf-8")),
            HEIGHT_KEY: int_feature(height),
            WIDTH_KEY: int_feature(width),
            CHANNELS_KEY: int_feature(channels),
            FILENAME_KEY: bytes_feature(relative_path.encode("utf-8")),
            FORMAT_KEY: bytes_feature(image_format.encode("ascii")),
        }))
        split = "train" if is_unlabeled else self._split_names[split_index(relative_path, self._buckets)]
        yield beam.pvalue.TaggedOutput(split, example.SerializeToString())
