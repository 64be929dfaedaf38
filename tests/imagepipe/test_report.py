"""The report's comparison with the previous run, from the facts each report leaves beside itself."""
import json

from imagepipe.report import FACTS_FILE, comparison_section, run_facts
from imagepipe.results import RunSummary


def facts_of(run_id, accuracy, counts, brightness):
    summary = RunSummary(pipeline="p", run_id=run_id, executed=[], cached=[], accuracy=accuracy)
    return run_facts(summary, {"counts": counts, "image_stats": {"mean_width": 100.0, "mean_height": 80.0,
                                                                   "mean_brightness": brightness}})


def test_the_comparison_shows_metric_class_count_and_drift_against_the_previous_report(tmp_path):
    before = facts_of("r1", 0.90, {"train": {"cat": 40, "dog": 40}, "eval": {"cat": 10, "dog": 10}}, 120.0)
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / FACTS_FILE).write_text(json.dumps(before))
    now = facts_of("r2", 0.95, {"train": {"cat": 40, "dog": 60, "fox": 8}, "eval": {"cat": 10, "dog": 15, "fox": 2}},
                   90.0)
    compared = comparison_section(tmp_path, "r2", now)
    assert compared["previous"] == "r1"
    rows = {name: (before, after, change) for name, before, after, change in compared["rows"]}
    assert rows["accuracy"][2] == 0.95 - 0.90
    assert rows["mean brightness (0-255)"] == (120.0, 90.0, -30.0)  # darker images arrive: drift
    assert compared["per_class"] == [("dog", 50, 75, 25), ("fox", 0, 10, 10)]


def test_the_first_report_has_nothing_to_compare_and_generated_data_counts_examples(tmp_path):
    assert comparison_section(tmp_path, "r1", facts_of("r1", 0.9, {}, 100.0)) == {}
    summary = RunSummary(pipeline="sine", run_id="r", executed=[], cached=[], mean_absolute_error=0.05)
    assert run_facts(summary, {"counts": {"train": 600}})["counts"] == {"train": {"examples": 600}}


def test_a_section_is_drawn_once_per_set_of_artifacts_and_read_back_the_same(tmp_path):
    from imagepipe.report import _drawn_once

    calls = []

    def draw():
        calls.append(1)
        return {"counts": {"train": {"cat": 3}}, "charts": {"per_class": "data:image/png;base64,AAAA"}}

    first = _drawn_once(tmp_path, "image-data", ["/tfx/Examples/1", "/tfx/IngestReport/1"], draw)
    again = _drawn_once(tmp_path, "image-data", ["/tfx/Examples/1", "/tfx/IngestReport/1"], draw)
    assert first == again and len(calls) == 1  # a cached re-run reads no example again
    _drawn_once(tmp_path, "image-data", ["/tfx/Examples/2", "/tfx/IngestReport/2"], draw)  # new examples
    _drawn_once(tmp_path, "image-data", ["/tfx/Examples/2", None], draw)  # an artifact missing: never kept
    _drawn_once(tmp_path, "image-data", ["/tfx/Examples/2", None], draw)
    assert len(calls) == 4
