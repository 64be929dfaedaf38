"""Resolver strategies: the Evaluator's baseline, and the Trainer's warm start.

The baseline for "no regression": the latest blessed model other than the candidate.

The Resolver runs after the Trainer, so the newest Model artifact is the
candidate. Comparing a model with itself says nothing; worse, it makes a cached
re-run evaluate again (the Evaluator's baseline input changes from "none" to
the model it blessed) and push again. Excluding the candidate keeps the
Evaluator's inputs identical when nothing changed.

The warm start: the latest blessed model that was *not* trained on the
current examples. A model trained on these very examples would change the
Trainer's inputs on every re-run (each run's model becoming the next run's
starting point), so an unchanged re-run could never be cached.
"""
from typing import Dict, List, Set

from tfx import types
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy


class LatestBlessedOtherModelStrategy(LatestBlessedModelStrategy):
    def _resolve(self, input_dict, model_channel_key, model_blessing_channel_key):
        models = input_dict[model_channel_key]
        if models:
            candidate_id = max(model.id for model in models)
            input_dict = dict(input_dict)
            input_dict[model_channel_key] = [m for m in models if m.id != candidate_id]
        return super()._resolve(input_dict, model_channel_key, model_blessing_channel_key)


def training_examples(store, model_id: int) -> Set[int]:
    """Ids of the artifacts the Trainer execution(s) that produced `model_id` read."""
    producers = [event.execution_id for event in store.get_events_by_artifact_ids([model_id])
                 if event.type == event.OUTPUT]
    return {event.artifact_id for event in store.get_events_by_execution_ids(producers) if event.type == event.INPUT}


class LatestBlessedModelFromOtherDataStrategy(LatestBlessedModelStrategy):
    """Inputs: `model`, `model_blessing` and `examples` (the examples the Trainer is about to read)."""

    def resolve_artifacts(self, store, input_dict: Dict[str, List[types.Artifact]]):
        current = {examples.id for examples in input_dict.get("examples", [])}
        models = [m for m in input_dict["model"] if not current & training_examples(store, m.id)]
        result = super().resolve_artifacts(store, {"model": models, "model_blessing": input_dict["model_blessing"]})
        return dict(result, examples=input_dict.get("examples", []))
