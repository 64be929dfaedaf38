"""EdgePusher: the TFLite / TFLite Micro artifact store, as a TFX component."""
from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.edge_pusher import executor


class EdgePusherSpec(ComponentSpec):
    PARAMETERS = {
        "pipeline_name": ExecutionParameter(type=str),
        "base_directory": ExecutionParameter(type=str),
        "representative_samples": ExecutionParameter(type=int),
        "max_int8_degradation": ExecutionParameter(type=float),
        "flash_budget_bytes": ExecutionParameter(type=int),
        "ram_budget_bytes": ExecutionParameter(type=int),
        # The spec's push.edge.device as JSON ({tflm_source, target, flash_counts_runtime}), or "".
        "device_check": ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "model_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "serving_push": ChannelParameter(type=standard_artifacts.PushedModel, optional=True),
    }
    OUTPUTS = {"pushed_model": ChannelParameter(type=standard_artifacts.PushedModel)}


class EdgePusher(base_component.BaseComponent):
    SPEC_CLASS = EdgePusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        model_blessing: types.BaseChannel,
        examples: types.BaseChannel,
        pipeline_name: str,
        base_directory: str,
        representative_samples: int,
        max_int8_degradation: float,
        flash_budget_bytes: int,
        ram_budget_bytes: int,
        serving_push: Optional[types.BaseChannel] = None,
        device_check: str = "",
    ):
        super().__init__(spec=EdgePusherSpec(
            model=model, model_blessing=model_blessing, examples=examples, serving_push=serving_push,
            pipeline_name=pipeline_name, base_directory=base_directory,
            representative_samples=representative_samples, max_int8_degradation=max_int8_degradation,
            flash_budget_bytes=flash_budget_bytes, ram_budget_bytes=ram_budget_bytes, device_check=device_check,
            pushed_model=types.Channel(type=standard_artifacts.PushedModel),
        ))
