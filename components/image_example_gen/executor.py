"""ImageExampleGen's Beam executor: folders of images -> tf.Examples.

Layout (the flowers codelab's): <root>/<class_name>/<image file>. The class list
is the sorted list of non-empty class folders; it is written once, beside the
examples (`label_names.json`), and every later stage reads it from there.

Files are identified by their content (JPEG, PNG, GIF, BMP), never by their
extension. A file that cannot be decoded is skipped, counted and listed in the
ingest report; it never fails the run.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import posixpath
import time
from typing import Any, Dict, Iterable, List, Tuple

import apache_beam as beam
import tensorflow as tf
from absl import logging
from PIL import Image, ImageOps
from tfx.components.example_gen import base_example_gen_executor, utils, write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.util import examples_utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.image_example_gen import progress, spans
from components.image_example_gen.stored_gzip import WriteToStoredGzipTFRecord

LABEL_NAMES_FILE = "label_names.json"
REPORT_FILE = "ingest_report.json"
SKIPPED_FILE = "skipped_files.jsonl"
SUPPORTED_FORMATS = ("JPEG", "PNG", "GIF", "BMP")
# Decompression-bomb guard: refuse images over 50 megapixels (an 8000x6000
# photo passes, a 10000x10000 image does not) instead of letting one file
# exhaust a worker's memory here or in the Trainer, which decodes on the fly.
MAX_PIXELS = 50_000_000
_EXIF_ORIENTATION = 0x0112
_REPORT_DIR_KEY = "_imagepipe_report_dir"
_PROGRESS_DIR_KEY = "_imagepipe_progress_dir"
UNLABELED_DIR_KEY = "unlabeled_dir"
ALLOW_CLASS_CHANGES_KEY = "allow_class_changes"
LABELS_PER_CLASS_KEY = "labels_per_class"
LABELS_SEED_KEY = "labels_seed"
REPORT_KEY = "ingest_report"


class ImageFolderError(ValueError):
    """The data root has no usable class folders."""


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("_")


def scan_class_folders(root: str, unlabeled_dir: str) -> Tuple[List[str], List[str], Dict[str, List[str]]]:
    """Lists (classes, empty_classes, files per class) below `root`.

    Files are paths relative to `root`, with '/' separators.
    """
    if not fileio.isdir(root):
        raise ImageFolderError(f"data root {root} is not a folder")
    entries = sorted(fileio.listdir(root))
    files_by_class: Dict[str, List[str]] = {}
    for entry in entries:
        name = entry.rstrip("/")
        folder = posixpath.join(root, name)
        if _is_hidden(name) or not fileio.isdir(folder):
            continue
        files_by_class[name] = sorted(
            posixpath.join(name, f.rstrip("/"))
            for f in fileio.listdir(folder)
            if not _is_hidden(f) and not fileio.isdir(posixpath.join(folder, f))
        )
    unlabeled = files_by_class.pop(unlabeled_dir, [])
    classes = sorted(name for name, files in files_by_class.items() if files)
    empty = sorted(name for name, files in files_by_class.items() if not files)
    if not classes:
        raise ImageFolderError(
            f"data root {root} has no class folder with images; expected <root>/<class_name>/<image> "
            f"(found {len(entries)} entries: {', '.join(entries[:10]) or 'none'})"
        )
    if unlabeled:
        files_by_class[unlabeled_dir] = unlabeled
    return classes, empty, files_by_class


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


_MODE_CHANNELS = {"1": 1, "L": 1, "P": 3, "LA": 2, "PA": 4, "RGB": 3, "RGBA": 4, "CMYK": 4, "YCbCr": 3,
                  "I": 1, "I;16": 1, "I;16B": 1, "I;16L": 1, "F": 1}


def inspect_image(data: bytes) -> Tuple[str, int, int, int]:
    """Returns (format, height, width, channels), decoding the whole image so
    that truncated or corrupt files are caught here, not in the Trainer."""
    if not data:
        raise ValueError("empty file")
    with Image.open(io.BytesIO(data)) as image:
        if image.format not in SUPPORTED_FORMATS:
            raise ValueError(f"unsupported format {image.format}; supported: {', '.join(SUPPORTED_FORMATS)}")
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ValueError(f"{width}x{height} exceeds the {MAX_PIXELS:,}-pixel limit")
        mode = image.mode
        if mode == "P" and "transparency" in image.info:
            mode = "PA"
        image.load()
    return image.format, height, width, _MODE_CHANNELS.get(mode, 3)


def scan_span_folders(input_base: str, folders: List[str], unlabeled_dir: str, allow_class_changes: bool = False
                      ) -> Tuple[List[str], List[str], Dict[str, List[str]]]:
    """scan_class_folders over one or more span folders below `input_base`
    ('' = input_base itself), merged; file paths relative to `input_base`.

    Every span must have the same classes, because a label index must keep
    its meaning; with `allow_class_changes` the classes are the union."""
    classes: List[str] = []
    empty: set = set()
    files_by_class: Dict[str, List[str]] = {}
    for folder in folders:
        span_classes, span_empty, span_files = scan_class_folders(posixpath.join(input_base, folder), unlabeled_dir)
        if classes and span_classes != classes and not allow_class_changes:
            added, removed = sorted(set(span_classes) - set(classes)), sorted(set(classes) - set(span_classes))
            raise ImageFolderError(
                f"the class folders changed between data spans {folders[0]} and {folder} "
                f"(added: {', '.join(added) or 'none'}; removed: {', '.join(removed) or 'none'}): label indices "
                "would change meaning; fix: give every span the same class folders, or set "
                "data.allow_class_changes: true to train a model on the new class list"
            )
        classes = sorted(set(classes) | set(span_classes))
        empty.update(span_empty)
        for name, files in span_files.items():
            files_by_class.setdefault(name, []).extend(posixpath.join(folder, f) for f in files)
    return classes, sorted(empty - set(classes)), files_by_class


def cumulative_buckets(split_config: example_gen_pb2.SplitConfig) -> List[int]:
    """Each split's upper hash bucket, as TFX's partition function takes them."""
    return [sum(split.hash_buckets for split in split_config.splits[:i + 1]) for i in range(len(split_config.splits))]


@functools.lru_cache(maxsize=8)
def _parsed_output_config(output_config_json: str) -> example_gen_pb2.Output:
    # split_of runs once per file: parse the config once.
    output_config = example_gen_pb2.Output()
    proto_utils.json_to_proto(output_config_json, output_config)
    return output_config


def split_of(relative_path: str, output_config_json: str) -> str:
    """The split TFX's ExampleGen puts this file in (its partition function, on the `filename` feature)."""
    output_config = _parsed_output_config(output_config_json)
    splits = output_config.split_config.splits
    buckets = cumulative_buckets(output_config.split_config)
    example = tf.train.Example(features=tf.train.Features(feature={"filename": _bytes_feature(relative_path.encode("utf-8"))}))
    return splits[base_example_gen_executor._PartitionFn(example, len(buckets), buckets, output_config.split_config)].name


def partition(example: tf.train.Example, num_partitions: int, buckets: List[int],
              split_config: example_gen_pb2.SplitConfig, train_index: int) -> int:
    """TFX's hash split on the file path, except that unlabelled images (label -1) all go to the
    train split: they cannot be evaluated (the Evaluator would count them as errors), and the
    train split is where a semi-supervised Trainer reads them."""
    if example.features.feature["label"].int64_list.value[0] < 0:
        return train_index
    return base_example_gen_executor._PartitionFn(example, num_partitions, buckets, split_config)


def labels_to_drop(files_by_class: Dict[str, List[str]], classes: List[str], labels_per_class: int, seed: int,
                   output_config_json: str) -> List[str]:
    """Train-split files whose labels are dropped so that `labels_per_class` per class stay labelled
    (the semi-supervised protocol: 25 per class = CIFAR-10's 250 labels). Which ones stay is decided
    by a seeded hash of the path: the same files for the same seed, whatever the order on disk.
    The eval split keeps every label."""
    dropped = []
    for name in classes:
        train = [f for f in files_by_class[name] if split_of(f, output_config_json) == "train"]
        ranked = sorted(train, key=lambda f: hashlib.sha256(f"{seed}:{f}".encode("utf-8")).hexdigest())
        dropped.extend(ranked[labels_per_class:])
    return sorted(dropped)


def upright(data: bytes) -> bytes | None:
    """A JPEG whose EXIF says it is rotated or mirrored, turned upright and
    stored as PNG (lossless); None when nothing needs turning. TensorFlow's
    decoders ignore EXIF, so this is the one place it can be applied."""
    with Image.open(io.BytesIO(data)) as image:
        if image.format != "JPEG" or image.getexif().get(_EXIF_ORIENTATION, 1) == 1:
            return None
        turned = ImageOps.exif_transpose(image)
        buffer = io.BytesIO()
        turned.save(buffer, format="PNG")
        return buffer.getvalue()


class _ToExample(beam.DoFn):
    SKIPPED = "skipped"

    def __init__(self, root: str, label_index: Dict[str, int], unlabeled_dir: str, progress_dir: str | None = None,
                 drop_labels: Iterable[str] = ()):
        self._root = root
        self._label_index = label_index
        self._unlabeled_dir = unlabeled_dir
        self._progress_dir = progress_dir
        self._drop_labels = frozenset(drop_labels)

    def setup(self):
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        self._count = progress.WorkerCount(self._progress_dir)

    def finish_bundle(self):
        self._count.flush()

    def process(self, relative_path: str) -> Iterable[Any]:
        self._count.add()
        class_name = posixpath.basename(posixpath.dirname(relative_path))
        try:
            with fileio.open(posixpath.join(self._root, relative_path), "rb") as f:
                data = f.read()
            image_format, height, width, channels = inspect_image(data)
            turned = upright(data)
            if turned is not None:
                beam.metrics.Metrics.counter("ImageExampleGen", "images_turned_upright").inc()
                data = turned
                image_format, height, width, channels = inspect_image(data)
        except Exception as exc:  # any undecodable file is reported, never fatal
            beam.metrics.Metrics.counter("ImageExampleGen", "images_skipped").inc()
            yield beam.pvalue.TaggedOutput(
                self.SKIPPED, json.dumps({"file": relative_path, "reason": f"{type(exc).__name__}: {exc}"})
            )
            return
        beam.metrics.Metrics.counter("ImageExampleGen", "images_ingested").inc()
        is_unlabeled = class_name == self._unlabeled_dir or relative_path in self._drop_labels
        example = tf.train.Example(features=tf.train.Features(feature={
            "image": _bytes_feature(data),
            "label": _int_feature(-1 if is_unlabeled else self._label_index[class_name]),
            "label_name": _bytes_feature(b"" if is_unlabeled else class_name.encode("utf-8")),
            "height": _int_feature(height),
            "width": _int_feature(width),
            "channels": _int_feature(channels),
            "filename": _bytes_feature(relative_path.encode("utf-8")),
            "format": _bytes_feature(image_format.encode("ascii")),
        }))
        yield example


def _write_json(path: str, value: Any) -> None:
    with fileio.open(path, "w") as f:
        f.write(json.dumps(value, indent=2, sort_keys=True))


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def ImageFoldersToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any], split_pattern: str):
    """Reads <input_base>/[<span folder>/]<class>/<file> into tf.Examples.

    `split_pattern` is the input pattern after span resolution, e.g.
    `span-3/*/*`; with `data.spans` wider than the newest span, the older span
    folders are read too. `filename` is the path relative to input_base.
    """
    input_base = exec_properties["input_base"]
    span_pattern = exec_properties.get(spans.SPAN_PATTERN_KEY) or ""
    allow_class_changes = bool(exec_properties.get(ALLOW_CLASS_CHANGES_KEY, 0))
    unlabeled_dir = exec_properties[UNLABELED_DIR_KEY]
    if spans.has_span(span_pattern):
        on_disk = [folder for _, folder in spans.select_spans(
            input_base, span_pattern, exec_properties[utils.SPAN_PROPERTY_NAME], 0)]
        span_count = exec_properties.get(spans.SPAN_COUNT_KEY, 1)
        folders = on_disk[-span_count:] if span_count else on_disk
        # The drop before the ones read must have the same classes too: a new
        # class in this week's drop would otherwise shift every label index.
        previous = on_disk[-len(folders) - 1:-len(folders)]
        scan_span_folders(input_base, previous + folders[:1], unlabeled_dir, allow_class_changes)
    else:
        folders = [split_pattern.split("*", 1)[0].rstrip("/")]
    data_root = posixpath.join(input_base, *folders).rstrip("/") if len(folders) == 1 else input_base
    classes, empty, files_by_class = scan_span_folders(input_base, folders, unlabeled_dir, allow_class_changes)
    report_dir = exec_properties[_REPORT_DIR_KEY]
    _write_json(posixpath.join(report_dir, LABEL_NAMES_FILE), classes)
    all_files = [f for files in files_by_class.values() for f in files]
    labels_per_class = exec_properties.get(LABELS_PER_CLASS_KEY) or 0
    dropped = labels_to_drop(files_by_class, classes, labels_per_class, exec_properties.get(LABELS_SEED_KEY) or 0,
                             exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY]) if labels_per_class else []
    _write_json(posixpath.join(report_dir, REPORT_FILE), {
        "data_root": data_root,
        "span_folders": folders,
        "label_names": classes,
        "empty_class_folders": empty,
        "files_per_class": {name: len(files) for name, files in files_by_class.items()},
        "files_found": len(all_files),
        "labels_per_class": labels_per_class or None,
        "labels_dropped": len(dropped),
    })
    results = (
        pipeline
        | "ListFiles" >> beam.Create(all_files)
        # Reshuffle so that decoding spreads over all workers, not one.
        | "Spread" >> beam.Reshuffle()
        | "Decode" >> beam.ParDo(
            _ToExample(input_base, {name: i for i, name in enumerate(classes)}, unlabeled_dir,
                       exec_properties.get(_PROGRESS_DIR_KEY), dropped)
        ).with_outputs(_ToExample.SKIPPED, main="examples")
    )
    _ = (
        results[_ToExample.SKIPPED]
        | "WriteSkipped" >> beam.io.WriteToText(
            posixpath.join(report_dir, SKIPPED_FILE), shard_name_template="", num_shards=1
        )
    )
    return results["examples"]


class Executor(BaseExampleGenExecutor):
    """Writes the examples plus an ingest report (class list, counts, skipped files)."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return ImageFoldersToExample

    def Do(self, input_dict, output_dict, exec_properties):
        report = artifact_utils.get_single_instance(output_dict[REPORT_KEY])
        examples = artifact_utils.get_single_instance(output_dict["examples"])
        fileio.makedirs(report.uri)
        started = time.monotonic()
        # The file list is made when the Beam job is built; its count is in the report by the time decoding starts.
        files_found = lambda: read_ingest_report(report.uri)["files_found"]  # noqa: E731
        with progress.watch(files_found) as progress_dir:
            exec_properties = dict(exec_properties, **{_REPORT_DIR_KEY: report.uri, _PROGRESS_DIR_KEY: progress_dir})
            self._write_examples(examples, exec_properties)
        summary = read_ingest_report(report.uri)
        # The class list travels with the examples, so the Trainer and the
        # Pusher read the same vocabulary that labelled the data.
        _write_json(posixpath.join(examples.uri, LABEL_NAMES_FILE), summary["label_names"])
        summary["skipped"] = read_skipped(report.uri)
        summary["files_skipped"] = len(summary["skipped"])
        summary["files_ingested"] = summary["files_found"] - summary["files_skipped"]
        summary["seconds"] = round(time.monotonic() - started, 1)
        _write_json(posixpath.join(report.uri, REPORT_FILE), summary)
        logging.info("%s %s of %s files in %.1f s; %s skipped%s", progress.LOG_PREFIX,
                     f"{summary['files_ingested']:,}", f"{summary['files_found']:,}", summary["seconds"],
                     f"{summary['files_skipped']:,}", " (the run report says why)" if summary["files_skipped"] else "")
        for artifact in (report, examples):
            artifact.set_int_custom_property("num_classes", len(summary["label_names"]))
            artifact.set_int_custom_property("files_ingested", summary["files_ingested"])
            artifact.set_int_custom_property("files_skipped", summary["files_skipped"])


    def _write_examples(self, examples: Any, exec_properties: Dict[str, Any]) -> None:
        """BaseExampleGenExecutor.Do, less the Reshuffle it puts before writing, with unlabelled
        images kept in the train split (`partition`).

        Our file paths are already spread over the workers before decoding; a
        second shuffle of the encoded images would move every byte between
        worker processes again (bench/ingest.py measures it). Each worker
        writes its own shards of each split instead, as gzip at deflate level 0
        (stored_gzip.py: the images are compressed already)."""
        input_config, output_config = example_gen_pb2.Input(), example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        examples.split_names = artifact_utils.encode_split_names(
            utils.generate_output_split_names(input_config, output_config))
        split_config = output_config.split_config
        names = [split.name for split in split_config.splits]
        if len(input_config.splits) != 1 or "train" not in names:
            raise ValueError(f"ImageExampleGen needs one input split and a train output split (got {names})")
        buckets = cumulative_buckets(split_config)
        with self._make_beam_pipeline() as pipeline:
            examples_by_split = (
                pipeline
                | "InputToRecord" >> ImageFoldersToExample(exec_properties, input_config.splits[0].pattern)
                | "SplitData" >> beam.Partition(partition, len(buckets), buckets, split_config, names.index("train")))
            for split_name, split in zip(names, examples_by_split):
                _ = (
                    split
                    | f"Serialize[{split_name}]" >> beam.Map(lambda example: example.SerializeToString())
                    | f"Write[{split_name}]" >> WriteToStoredGzipTFRecord(
                        posixpath.join(artifact_utils.get_split_uri([examples], split_name), write_split.DEFAULT_FILE_NAME),
                        file_name_suffix=".gz")
                )
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(examples, write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP))


def read_ingest_report(report_dir: str) -> Dict[str, Any]:
    with fileio.open(posixpath.join(report_dir, REPORT_FILE)) as f:
        return json.loads(f.read())


def read_skipped(report_dir: str) -> List[Dict[str, str]]:
    path = posixpath.join(report_dir, SKIPPED_FILE)
    if not fileio.exists(path):
        return []
    with fileio.open(path) as f:
        return [json.loads(line) for line in f.read().splitlines() if line.strip()]


def read_label_names(examples_uri: str) -> List[str]:
    with fileio.open(os.path.join(examples_uri, LABEL_NAMES_FILE)) as f:
        return json.loads(f.read())
