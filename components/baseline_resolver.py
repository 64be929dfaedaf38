"""The baseline for "no regression": the latest blessed model other than the candidate.

The Resolver runs after the Trainer, so the newest Model artifact is the
candidate. Comparing a model with itself says nothing; worse, it makes a cached
re-run evaluate again (the Evaluator's baseline input changes from "none" to
the model it blessed) and push again. Excluding the candidate keeps the
Evaluator's inputs identical when nothing changed.
"""
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy


class LatestBlessedOtherModelStrategy(LatestBlessedModelStrategy):
    def _resolve(self, input_dict, model_channel_key, model_blessing_channel_key):
        models = input_dict[model_channel_key]
        if models:
            candidate_id = max(model.id for model in models)
            input_dict = dict(input_dict)
            input_dict[model_channel_key] = [m for m in models if m.id != candidate_id]
        return super()._resolve(input_dict, model_channel_key, model_blessing_channel_key)
