"""ExampleValidator that stops the pipeline on anomalies, before any training.

TFX's ExampleValidator records anomalies but lets the pipeline go on; a model
trained on data that breaks the schema should never be pushed, so ours raises.
"""
from tfx.components import ExampleValidator
from tfx.components.example_validator import executor as tfx_executor
from tfx.dsl.components.base import executor_spec


class DataAnomaliesError(RuntimeError):
    """The examples do not match the schema in schemas/."""


def describe_anomalies(anomalies) -> str:
    lines = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        details = "; ".join(reason.description or reason.short_description for reason in info.reason)
        lines.append(f"  - feature `{feature}`: {info.short_description}: {details}")
    if anomalies.HasField("dataset_anomaly_info"):
        lines.append(f"  - dataset: {anomalies.dataset_anomaly_info.description}")
    return "\n".join(lines)


class Executor(tfx_executor.Executor):
    def _Validate(self, inputs, outputs):
        anomalies = super()._Validate(inputs, outputs)
        if anomalies.anomaly_info or anomalies.HasField("dataset_anomaly_info"):
            split_dir = next(iter(outputs.values()))
            raise DataAnomaliesError(
                f"the examples in {split_dir.rstrip('/').split('/')[-1]} do not match the schema "
                "(schemas/image_examples.pbtxt); training stopped before it began:\n" + describe_anomalies(anomalies)
                + "\nfix: correct the data, or the schema if the data is right"
            )
        return anomalies


class StrictExampleValidator(ExampleValidator):
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
