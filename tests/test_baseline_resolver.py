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
