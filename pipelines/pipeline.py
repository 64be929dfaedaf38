"""Spec -> TFX pipeline. Every path comes in as an argument (as in the TFX templates).

ImageExampleGen -> StatisticsGen -> SchemaGen (imported from schemas/) -> ExampleValidator
-> Transform -> Trainer -> Resolver (latest blessed, not the candidate) -> Evaluator -> Pusher
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
from pathlib import Path
from typing import List, Optional

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

from components.baseline_resolver import LatestBlessedOtherModelStrategy
from components.example_validator import StrictExampleValidator
from components.image_example_gen import ImageExampleGen
from components.image_transform import LABEL_KEY
from components.serving_pusher import ServingPusher
from pipelines.spec import SPAN_TOKEN, Spec

PREPROCESSING_FN = "components.image_transform.preprocessing_fn"


def source_fingerprint(*module_names: str) -> str:
    """A hash of the code a component runs. TFX caches on inputs and
    parameters; putting this among the parameters makes a code change
    invalidate the cache, as it should."""
    digest = hashlib.sha256()
    for name in sorted(module_names):
        digest.update(inspect.getsource(importlib.import_module(name)).encode())
    return digest.hexdigest()[:16]


def split_input_pattern(data_root: Path) -> tuple[str, str]:
    """data/digits -> ('data/digits', '*/*'); data/d/span-{SPAN} -> ('data/d', 'span-{SPAN}/*/*')."""
    parts = data_root.parts
    for index, part in enumerate(parts):
        if SPAN_TOKEN in part:
            return str(Path(*parts[:index])), "/".join(parts[index:] + ("*", "*"))
    return str(data_root), "*/*"


def eval_config(spec: Spec) -> tfma.EvalConfig:
    accuracy_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": spec.evaluation.min_accuracy}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            # A new model may be at most max_accuracy_drop below the baseline.
            absolute={"value": -spec.evaluation.max_accuracy_drop - 1e-9},
        ),
    )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(signature_name="serving_examples", label_key=LABEL_KEY, prediction_key="probabilities")
        ],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["label_name"])],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    # Thresholds on the overall slice only; per-class accuracy is reported, not gated.
                    tfma.MetricConfig(
                        class_name="SparseCategoricalAccuracy",
                        per_slice_thresholds=[
                            tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=accuracy_threshold)
                        ],
                    ),
                    tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
                ]
            )
        ],
    )


def create_pipeline(
    spec: Spec,
    pipeline_root: str,
    metadata_path: str,
    data_root: Path,
    schema_file: str,
    serving_base_dir: str,
    beam_pipeline_args: Optional[List[str]] = None,
) -> tfx.dsl.Pipeline:
    input_base, input_pattern = split_input_pattern(data_root)
    example_gen = ImageExampleGen(
        input_base=input_base,
        input_pattern=input_pattern,
        train_buckets=spec.data.train_buckets,
        eval_buckets=spec.data.eval_buckets,
        unlabeled_dir=spec.data.unlabeled_dir,
    )
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_file).with_id("SchemaGen")
    example_validator = StrictExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    ).with_id("ExampleValidator")

    image_config = spec.image.model_dump()
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config={"image": image_config, "code": source_fingerprint("components.image_transform")},
        splits_config=tfx.proto.SplitsConfig(analyze=["train"]),
        # The Trainer applies the graph on the fly: materialised float images
        # would take ~4 bytes per pixel per image on disk for nothing.
        materialize=False,
        disable_statistics=True,
    )
    transform.add_upstream_node(example_validator)

    trainer_module = f"trainer_modules.{spec.trainer.module}"
    trainer = tfx.components.Trainer(
        run_fn=f"{trainer_module}.run_fn",
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config={
            "image": image_config,
            "trainer": spec.trainer.model_dump(),
            "code": source_fingerprint(trainer_module, "trainer_modules.base", "trainer_modules.distribution"),
        },
    )

    baseline_resolver = tfx.dsl.Resolver(
        strategy_class=LatestBlessedOtherModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    # After the Trainer, so that the newest model is the candidate (see the strategy).
    baseline_resolver.add_upstream_node(trainer)

    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline_resolver.outputs["model"],
        eval_config=eval_config(spec),
        example_splits=["eval"],
    )

    components = [example_gen, statistics_gen, schema_gen, example_validator, transform, trainer,
                  baseline_resolver, evaluator]
    if spec.push.serving:
        components.append(ServingPusher(
            model=trainer.outputs["model"],
            model_blessing=evaluator.outputs["blessing"],
            push_destination=tfx.proto.PushDestination(
                filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_base_dir)
            ),
        ).with_id("Pusher"))

    return tfx.dsl.Pipeline(
        pipeline_name=spec.pipeline,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=True,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path),
        beam_pipeline_args=beam_pipeline_args or ["--direct_num_workers=1"],
    )
