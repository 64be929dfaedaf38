"""The baseline is the latest blessed model other than the candidate (the newest model)."""
from tfx.types import standard_artifacts

from components.baseline_resolver import LatestBlessedOtherModelStrategy


def model(artifact_id):
    artifact = standard_artifacts.Model()
    artifact.id = artifact_id
    return artifact


def blessing(model_id, blessed):
    artifact = standard_artifacts.ModelBlessing()
    artifact.set_int_custom_property("current_model_id", model_id)
    artifact.set_int_custom_property("blessed", int(blessed))
    return artifact


def resolve(models, blessings):
    result = LatestBlessedOtherModelStrategy()._resolve(
        {"model": models, "model_blessing": blessings}, "model", "model_blessing")
    return [m.id for m in result["model"]]


def test_first_model_has_no_baseline():
    assert resolve([model(1)], []) == []


def test_a_cached_rerun_does_not_compare_the_model_with_itself():
    assert resolve([model(1)], [blessing(1, True)]) == []


def test_a_new_model_is_compared_with_the_latest_blessed_one():
    models = [model(1), model(2), model(3), model(4)]
    blessings = [blessing(1, True), blessing(2, True), blessing(3, False)]
    assert resolve(models, blessings) == [2]


def test_when_the_candidate_was_blessed_the_previous_blessed_model_is_the_baseline():
    assert resolve([model(1), model(2)], [blessing(1, True), blessing(2, True)]) == [1]


class FakeStore:
    """Just the MLMD lineage the warm-start strategy reads: model id -> the examples its Trainer read."""

    class Event:
        INPUT, OUTPUT = 1, 2

        def __init__(self, artifact_id, execution_id, kind):
            self.artifact_id, self.execution_id, self.type = artifact_id, execution_id, kind

    def __init__(self, trained_on):
        self.events = []
        for execution_id, (model_id, examples_id) in enumerate(trained_on.items()):
            self.events += [self.Event(model_id, execution_id, self.Event.OUTPUT),
                            self.Event(examples_id, execution_id, self.Event.INPUT)]

    def get_events_by_artifact_ids(self, ids):
        return [e for e in self.events if e.artifact_id in ids]

    def get_events_by_execution_ids(self, ids):
        return [e for e in self.events if e.execution_id in ids]


def examples(artifact_id):
    artifact = standard_artifacts.Examples()
    artifact.id = artifact_id
    return artifact


def warm_start_model(models, blessings, current_examples, trained_on):
    from components.baseline_resolver import LatestBlessedModelFromOtherDataStrategy

    result = LatestBlessedModelFromOtherDataStrategy().resolve_artifacts(
        FakeStore(trained_on), {"model": models, "model_blessing": blessings, "examples": [examples(current_examples)]})
    return [m.id for m in result["model"]]


def test_warm_start_never_starts_from_a_model_trained_on_the_same_examples():
    # Model 1 was trained on examples 100 and blessed; re-running on 100 must not start from it.
    assert warm_start_model([model(1)], [blessing(1, True)], 100, {1: 100}) == []


def test_warm_start_takes_the_latest_blessed_model_of_earlier_data():
    trained_on = {1: 100, 2: 200, 3: 200, 4: 300}
    blessings = [blessing(1, True), blessing(2, True), blessing(3, False), blessing(4, True)]
    models = [model(i) for i in (1, 2, 3, 4)]
    assert warm_start_model(models, blessings, 400, trained_on) == [4]
    assert warm_start_model(models, blessings, 300, trained_on) == [2]  # 3 was not blessed
