"""Spec -> TFX pipeline. Every path comes in as an argument (as in the TFX templates).

Image models:
  ImageExampleGen -> StatisticsGen (reads the schema SchemaGen imports from schemas/) -> ExampleValidator
  -> Transform -> Trainer -> Resolver (latest blessed, not the candidate) -> Evaluator
  -> Pusher (TF Serving) -> EdgePusher (TFLite / microcontroller bundle)
Generated tabular data (the sine hello world): CsvExampleGen over the generated
CSV, no Transform (the model takes x as it is), the same from the Trainer on.
"""
from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib.util
from pathlib import Path
from typing import Callable, Dict, List, Optional

import tensorflow_model_analysis as tfma

# The modules themselves, not `tfx.v1`: importing that also imports every Google Cloud extension
# (about 2 s of every run's start-up, cached runs included).
from tfx.components import CsvExampleGen, Evaluator, StatisticsGen, Trainer, Transform
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.orchestration import metadata
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import example_gen_pb2, pusher_pb2, trainer_pb2, transform_pb2
from tfx.types import Channel, standard_artifacts

from components.baseline_resolver import LatestBlessedModelFromOtherDataStrategy, LatestBlessedOtherModelStrategy
from components.contracts import CLASSIFICATION
from components.edge_pusher import EdgePusher
from components.example_validator import StrictExampleValidator
from components.image_example_gen import ImageExampleGen
from components.image_transform import LABEL_KEY
from components.serving_pusher import ServingPusher
from imagepipe.spec import SPAN_TOKEN, Spec, span_count
from trainer_modules.context import trainer_custom_config

PREPROCESSING_FN = "components.image_transform.preprocessing_fn"


PROJECT_PACKAGES = ("components", "trainer_modules", "imagepipe")


def _module_file(name: str) -> Optional[Path]:
    """The source file of a project module, or None when `name` is not a module (a class or a constant)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec and spec.origin and spec.origin.endswith(".py") else None


def project_imports(*module_names: str) -> Dict[str, Path]:
    """The given modules and every project module they import, directly or not, with the packages
    around them (their __init__ runs too): read from the source with ast, nothing executed."""
    found: Dict[str, Path] = {}
    todo = list(module_names)
    while todo:
        name = todo.pop()
        if name in found or name.split(".")[0] not in PROJECT_PACKAGES:
            continue
        path = _module_file(name)
        if path is None:
            continue
        found[name] = path
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # the enclosing packages
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                todo.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                todo.append(node.module)
                todo.extend(f"{node.module}.{alias.name}" for alias in node.names)  # submodules
    return found


def source_fingerprint(*module_names: str, read: Callable[[Path], bytes] = Path.read_bytes) -> str:
    """A hash of the code a component runs: the given modules and every project module they import.
    TFX caches on inputs and parameters; putting this among the parameters makes a code change
    invalidate the cache, as it should."""
    digest = hashlib.sha256()
    for name, path in sorted(project_imports(*module_names).items()):
        digest.update(name.encode() + b"\0" + read(path) + b"\0")
    return digest.hexdigest()[:16]


def trainer_code_modules(spec: Spec) -> List[str]:
    """What the Trainer imports by name: its family, and MixMatch's backbone (imported at run time)."""
    modules = [f"trainer_modules.{spec.trainer.module}"]
    backbone = getattr(spec.trainer.family_hyperparameters(), "backbone", None)
    if backbone:
        modules.append(f"trainer_modules.{backbone}")
    return modules


def split_input_pattern(data_root: str) -> tuple[str, str]:
    """data/digits -> ('data/digits', '*/*'); gs://b/d/span-{SPAN} -> ('gs://b/d', 'span-{SPAN}/*/*').

    Strings, not Paths: a cloud URI must keep its '//'."""
    parts = data_root.rstrip("/").split("/")
    for index, part in enumerate(parts):
        if SPAN_TOKEN in part:
            return "/".join(parts[:index]), "/".join(parts[index:] + ["*", "*"])
    return data_root.rstrip("/"), "*/*"


def eval_config(spec: Spec) -> tfma.EvalConfig:
    return classification_eval_config(spec) if spec.task == CLASSIFICATION else regression_eval_config(spec)


def regression_eval_config(spec: Spec) -> tfma.EvalConfig:
    from trainer_modules.sine import Y_KEY

    error_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(upper_bound={"value": spec.evaluation.max_mean_absolute_error}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.LOWER_IS_BETTER,
            absolute={"value": spec.evaluation.max_mean_absolute_error_increase + 1e-9},
        ),
    )
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="serving_examples", label_key=Y_KEY, prediction_key=Y_KEY)],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            tfma.MetricConfig(class_name="MeanAbsoluteError", threshold=error_threshold),
            tfma.MetricConfig(class_name="MeanSquaredError"),
        ])],
    )


def classification_eval_config(spec: Spec) -> tfma.EvalConfig:
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


@dataclasses.dataclass
class Ingest:
    """What the Trainer and Evaluator need from the data stages."""

    examples: Channel
    schema: Channel
    validated: object  # the ExampleValidator node: training waits for it
    transform_graph: Optional[Channel]
    components: list


def image_ingest(spec: Spec, data_root: str, schema_file: str) -> Ingest:
    """Image folders -> examples, validated, and the Transform graph that decodes them."""
    input_base, input_pattern = split_input_pattern(data_root)
    example_gen = ImageExampleGen(
        input_base=input_base,
        input_pattern=input_pattern,
        train_buckets=spec.data.train_buckets,
        eval_buckets=spec.data.eval_buckets,
        unlabeled_dir=spec.data.unlabeled_dir,
        span_count=span_count(spec.data.spans),
        allow_class_changes=spec.data.allow_class_changes,
        labels_per_class=spec.data.labels_per_class or 0,
        labels_seed=spec.data.labels_seed,
    )
    statistics_gen, schema_gen, example_validator = validation(example_gen, schema_file)
    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config={"image": spec.image.model_dump(), "code": source_fingerprint("components.image_transform")},
        splits_config=transform_pb2.SplitsConfig(analyze=["train"]),
        # The Trainer applies the graph on the fly: materialised float images
        # would take ~4 bytes per pixel per image on disk for nothing.
        materialize=False,
        disable_statistics=True,
    )
    transform.add_upstream_node(example_validator)
    return Ingest(example_gen.outputs["examples"], schema_gen.outputs["schema"], example_validator,
                  transform.outputs["transform_graph"],
                  [example_gen, statistics_gen, schema_gen, example_validator, transform])


def generated_ingest(spec: Spec, data_root: str, schema_file: str) -> Ingest:
    """The generated CSV -> examples, validated; split train/eval/test by hash."""
    splits = [("train", spec.data.train_buckets), ("eval", spec.data.eval_buckets), ("test", spec.data.test_buckets)]
    example_gen = CsvExampleGen(
        input_base=data_root,
        output_config=example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
            example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=buckets) for name, buckets in splits if buckets
        ])),
    )
    statistics_gen, schema_gen, example_validator = validation(example_gen, schema_file)
    return Ingest(example_gen.outputs["examples"], schema_gen.outputs["schema"], example_validator, None,
                  [example_gen, statistics_gen, schema_gen, example_validator])


def validation(example_gen, schema_file: str):
    schema_gen = ImportSchemaGen(schema_file=schema_file).with_id("SchemaGen")
    # With the schema: its image_domain keeps the images' bytes out of TFDV's top-k and unique counts.
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"])
    example_validator = StrictExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    ).with_id("ExampleValidator")
    return statistics_gen, schema_gen, example_validator


def create_pipeline(
    spec: Spec,
    pipeline_root: str,
    metadata_path: str,
    data_root: str,
    schema_file: str,
    serving_base_dir: str,
    edge_base_dir: str,
    beam_pipeline_args: Optional[List[str]] = None,
    for_kubeflow: bool = False,
    tflm_source: Optional[str] = None,
) -> tfx_pipeline.Pipeline:
    """`for_kubeflow`: Kubeflow Pipelines v2 runs resolvers in its own metadata
    service and knows only TFX's stock strategies, so the compiled pipeline uses
    LatestBlessedModelStrategy where local runs use our lineage-aware ones.
    `tflm_source`: push.edge.device.tflm_source resolved (where the EdgePusher finds TFLM)."""
    ingest = generated_ingest if spec.data.generate else image_ingest
    data = ingest(spec, data_root, schema_file)

    warm_start_resolver = None
    if spec.trainer.warm_start:
        # Locally, the latest blessed model trained on *other* examples, so
        # that an unchanged re-run stays cached (see the strategy).
        lineage = {} if for_kubeflow else {"examples": data.examples}
        warm_start_resolver = Resolver(
            strategy_class=(LatestBlessedModelStrategy if for_kubeflow
                            else LatestBlessedModelFromOtherDataStrategy),
            model=Channel(type=standard_artifacts.Model),
            model_blessing=Channel(type=standard_artifacts.ModelBlessing),
            **lineage,
        ).with_id("warm_start_model_resolver")

    trainer_module = f"trainer_modules.{spec.trainer.module}"
    trainer = Trainer(
        run_fn=f"{trainer_module}.run_fn",
        examples=data.examples,
        transform_graph=data.transform_graph,
        schema=data.schema,
        base_model=warm_start_resolver.outputs["model"] if warm_start_resolver else None,
        train_args=trainer_pb2.TrainArgs(splits=["train"]),
        eval_args=trainer_pb2.EvalArgs(splits=["eval"]),
        custom_config=trainer_custom_config(spec.trainer, spec.image, source_fingerprint(*trainer_code_modules(spec))),
    )
    trainer.add_upstream_node(data.validated)  # train only on validated data

    baseline_resolver = Resolver(
        strategy_class=LatestBlessedModelStrategy if for_kubeflow else LatestBlessedOtherModelStrategy,
        model=Channel(type=standard_artifacts.Model),
        model_blessing=Channel(type=standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    # After the Trainer, so that the newest model is the candidate (see the strategy).
    baseline_resolver.add_upstream_node(trainer)

    evaluator = Evaluator(
        examples=data.examples,
        model=trainer.outputs["model"],
        baseline_model=baseline_resolver.outputs["model"],
        eval_config=eval_config(spec),
        example_splits=["eval"],
    )

    components = data.components + ([warm_start_resolver] if warm_start_resolver else []) + [
        trainer, baseline_resolver, evaluator]
    serving_push = None
    if spec.push.serving:
        serving_pusher = ServingPusher(
            model=trainer.outputs["model"],
            model_blessing=evaluator.outputs["blessing"],
            push_destination=pusher_pb2.PushDestination(
                filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_base_dir)
            ),
        ).with_id("Pusher")
        components.append(serving_pusher)
        serving_push = serving_pusher.outputs["pushed_model"]
    if spec.push.edge:
        edge = spec.push.edge
        components.append(EdgePusher(
            model=trainer.outputs["model"],
            model_blessing=evaluator.outputs["blessing"],
            examples=data.examples,
            serving_push=serving_push,
            pipeline_name=spec.pipeline,
            base_directory=edge_base_dir,
            representative_samples=edge.representative_samples,
            max_int8_degradation=edge.max_int8_degradation,
            flash_budget_bytes=edge.flash_budget_bytes,
            ram_budget_bytes=edge.ram_budget_bytes,
            device_check=edge.device.model_copy(update={"tflm_source": tflm_source or edge.device.tflm_source})
            .model_dump_json() if edge.device else "",
        ).with_id("EdgePusher"))

    return tfx_pipeline.Pipeline(
        pipeline_name=spec.pipeline,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=True,
        metadata_connection_config=metadata.sqlite_metadata_connection_config(metadata_path),
        beam_pipeline_args=beam_pipeline_args or [],
    )
