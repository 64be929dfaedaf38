"""ImageExampleGen: a FileBasedExampleGen over class folders, plus an ingest report.

Span resolution (`{SPAN}` in the input pattern: the newest span), fingerprinting
for caching and hash splitting all come from TFX's FileBasedExampleGen; the
executor, reading several spans at once (spans.py), the unlabelled folder's name
and one output (the ingest report) are ours.
"""
from typing import Optional

from tfx import types
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.artifacts import IngestReport
from components.image_example_gen import executor, spans


class ImageExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    PARAMETERS = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        executor.UNLABELED_DIR_KEY: ExecutionParameter(type=str),
        spans.SPAN_COUNT_KEY: ExecutionParameter(type=int),
        executor.ALLOW_CLASS_CHANGES_KEY: ExecutionParameter(type=int),
        executor.LABELS_PER_CLASS_KEY: ExecutionParameter(type=int),
        executor.LABELS_SEED_KEY: ExecutionParameter(type=int),
        spans.SPAN_PATTERN_KEY: ExecutionParameter(type=str),
    }
    OUTPUTS = {
        **standard_component_specs.FileBasedExampleGenSpec.OUTPUTS,
        executor.REPORT_KEY: ChannelParameter(type=IngestReport),
    }


class ImageExampleGen(FileBasedExampleGen):
    SPEC_CLASS = ImageExampleGenSpec
    DRIVER_CLASS = spans.SpanRangeDriver
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        input_base: str,
        input_pattern: str,
        train_buckets: int,
        eval_buckets: int,
        unlabeled_dir: str = "unlabeled",
        range_config: Optional[range_config_pb2.RangeConfig] = None,
        span_count: int = 1,
        allow_class_changes: bool = False,
        labels_per_class: int = 0,
        labels_seed: int = 0,
    ):
        """`input_pattern` is relative to `input_base` and ends in `*/*`
        (class folder / file), e.g. `*/*` or `span-{SPAN}/*/*`. With {SPAN}:
        read the newest `span_count` spans (0 = all), newest as resolved by TFX."""
        input_config = example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name="images", pattern=input_pattern)]
        )
        # Split by a hash of the relative path, so that a file stays in its
        # split across runs and data drops.
        output_config = example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=train_buckets),
                    example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=eval_buckets),
                ],
                partition_feature_name="filename",
            )
        )
        spec = ImageExampleGenSpec(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            range_config=range_config,
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            unlabeled_dir=unlabeled_dir,
            span_count=span_count,
            allow_class_changes=int(allow_class_changes),
            labels_per_class=labels_per_class,
            labels_seed=labels_seed,
            span_pattern=input_pattern,
            examples=types.Channel(type=standard_artifacts.Examples),
            ingest_report=types.Channel(type=IngestReport),
        )
        base_beam_component.BaseBeamComponent.__init__(self, spec=spec)
