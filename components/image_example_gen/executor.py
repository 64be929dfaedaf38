"""ImageExampleGen's Beam executor: folders of images -> tf.Examples.

Layout (the flowers codelab's): <root>/<class_name>/<image file>. The class list
is the sorted list of non-empty class folders; it is written once, beside the
examples (`label_names.json`), and every later stage reads it from there.

This module runs in the launching process: it lists the folders, writes the
report and builds the Beam job. What each worker does with one file is in
decode.py. A file that cannot be decoded is skipped, counted and listed in the
ingest report; it never fails the run.
"""
from __future__ import annotations

import functools
import hashlib
import json
import posixpath
import time
from typing import Any, Dict, List

import apache_beam as beam
from absl import logging
from tfx.components.example_gen import utils, write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.util import examples_utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.contracts import INGEST_REPORT_FILE, LABEL_NAMES_FILE, SKIPPED_FILES_FILE, read_ingest_report
from components.image_example_gen import decode, progress, spans
from components.image_example_gen.folders import scan_span_folders
from components.image_example_gen.stored_gzip import WriteToStoredGzipTFRecord

_REPORT_DIR_KEY = "_imagepipe_report_dir"
_PROGRESS_DIR_KEY = "_imagepipe_progress_dir"
UNLABELED_DIR_KEY = "unlabeled_dir"
ALLOW_CLASS_CHANGES_KEY = "allow_class_changes"
LABELS_PER_CLASS_KEY = "labels_per_class"
LABELS_SEED_KEY = "labels_seed"
REPORT_KEY = "ingest_report"
FILES_PER_ELEMENT = 32


def cumulative_buckets(split_config: example_gen_pb2.SplitConfig) -> List[int]:
    """Each split's upper hash bucket, as TFX's partition function takes them."""
    return [sum(split.hash_buckets for split in split_config.splits[:i + 1]) for i in range(len(split_config.splits))]


@functools.lru_cache(maxsize=8)
def _parsed_output_config(output_config_json: str) -> example_gen_pb2.Output:
    # split_of runs once per file, and the executor and its Beam job read the same config: parse it once.
    output_config = example_gen_pb2.Output()
    proto_utils.json_to_proto(output_config_json, output_config)
    return output_config


def split_of(relative_path: str, output_config_json: str) -> str:
    """The split TFX's ExampleGen puts this file in (its partition function, on the `filename` feature)."""
    split_config = _parsed_output_config(output_config_json).split_config
    return split_config.splits[decode.split_index(relative_path, cumulative_buckets(split_config))].name


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


def _write_json(path: str, value: Any) -> None:
    with fileio.open(path, "w") as f:
        f.write(json.dumps(value, indent=2, sort_keys=True))


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
def ImageFoldersToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any], split_pattern: str):
    """Reads <input_base>/[<span folder>/]<class>/<file> into serialized tf.Examples: {split name: PCollection}.

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
    classes, empty, files_by_class, ignored = scan_span_folders(input_base, folders, unlabeled_dir, allow_class_changes)
    report_dir = exec_properties[_REPORT_DIR_KEY]
    _write_json(posixpath.join(report_dir, LABEL_NAMES_FILE), classes)
    all_files = [f for files in files_by_class.values() for f in files]
    labels_per_class = exec_properties.get(LABELS_PER_CLASS_KEY) or 0
    dropped = labels_to_drop(files_by_class, classes, labels_per_class, exec_properties.get(LABELS_SEED_KEY) or 0,
                             exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY]) if labels_per_class else []
    _write_json(posixpath.join(report_dir, INGEST_REPORT_FILE), {
        "data_root": data_root,
        "span_folders": folders,
        "label_names": classes,
        "empty_class_folders": empty,
        "files_per_class": {name: len(files) for name, files in files_by_class.items()},
        "files_found": len(all_files),
        "labels_per_class": labels_per_class or None,
        "labels_dropped": len(dropped),
        "ignored": ignored,  # not read (a folder inside a class, a name that is not UTF-8), with the reason
    })
    split_config = _parsed_output_config(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY]).split_config
    split_names = [split.name for split in split_config.splits]
    if "train" not in split_names:
        raise ValueError(f"ImageExampleGen needs a train output split (got {split_names})")
    results = (
        pipeline
        # Paths travel in groups: one path per element made the launching process handle 20,000
        # elements for 20,000 images, a third of a worker's CPU time (py-spy, bench/ingest.py).
        | "ListFiles" >> beam.Create([all_files[i:i + FILES_PER_ELEMENT] for i in range(0, len(all_files), FILES_PER_ELEMENT)])
        # Reshuffle so that decoding spreads over all workers, not one.
        | "Spread" >> beam.Reshuffle()
        | "Decode" >> beam.ParDo(decode.ToExample(
            input_base, {name: i for i, name in enumerate(classes)}, unlabeled_dir, split_names,
            cumulative_buckets(split_config), exec_properties.get(_PROGRESS_DIR_KEY), dropped)
        ).with_outputs(decode.ToExample.SKIPPED, *split_names)
    )
    _ = (
        results[decode.ToExample.SKIPPED]
        | "WriteSkipped" >> beam.io.WriteToText(
            posixpath.join(report_dir, SKIPPED_FILES_FILE), shard_name_template="", num_shards=1
        )
    )
    return {name: results[name] for name in split_names}


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
        _write_json(posixpath.join(report.uri, INGEST_REPORT_FILE), summary)
        logging.info("%s %s of %s files in %.1f s; %s skipped%s", progress.LOG_PREFIX,
                     f"{summary['files_ingested']:,}", f"{summary['files_found']:,}", summary["seconds"],
                     f"{summary['files_skipped']:,}", " (the run report says why)" if summary["files_skipped"] else "")
        for artifact in (report, examples):
            artifact.set_int_custom_property("num_classes", len(summary["label_names"]))
            artifact.set_int_custom_property("files_ingested", summary["files_ingested"])
            artifact.set_int_custom_property("files_skipped", summary["files_skipped"])

    def _write_examples(self, examples: Any, exec_properties: Dict[str, Any]) -> None:
        """BaseExampleGenExecutor.Do, less the Reshuffle it puts before writing, with unlabelled
        images kept in the train split (decode.ToExample).

        Our file paths are already spread over the workers before decoding; a
        second shuffle of the encoded images would move every byte between
        worker processes again (bench/ingest.py measures it). Each worker
        writes its own shards of each split instead, as gzip at deflate level 0
        (stored_gzip.py: the images are compressed already)."""
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = _parsed_output_config(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY])
        examples.split_names = artifact_utils.encode_split_names(
            utils.generate_output_split_names(input_config, output_config))
        if len(input_config.splits) != 1:
            raise ValueError(f"ImageExampleGen reads one input split (got {len(input_config.splits)})")
        with self._make_beam_pipeline() as pipeline:
            examples_by_split = pipeline | "InputToRecord" >> ImageFoldersToExample(
                exec_properties, input_config.splits[0].pattern)
            for split_name, split in examples_by_split.items():
                _ = (
                    split
                    | f"Write[{split_name}]" >> WriteToStoredGzipTFRecord(
                        posixpath.join(artifact_utils.get_split_uri([examples], split_name), write_split.DEFAULT_FILE_NAME),
                        file_name_suffix=".gz")
                )
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(examples, write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP))


def read_skipped(report_dir: str) -> List[Dict[str, str]]:
    path = posixpath.join(report_dir, SKIPPED_FILES_FILE)
    if not fileio.exists(path):
        return []
    with fileio.open(path) as f:
        return [json.loads(line) for line in f.read().splitlines() if line.strip()]
