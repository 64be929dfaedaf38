"""The README shows real output: each sample block is a file that docs/samples/regenerate.py wrote from a run."""
import json
import re
import subprocess
import sys

from tests.readme_samples import REPO, SAMPLES, readme_blocks, sample, shape


def test_every_sample_block_is_its_generated_file_with_its_provenance():
    blocks = readme_blocks()
    assert {"make-run", "progress", "validate"} <= set(blocks)
    for name, body in blocks.items():
        assert body == sample(name), f"README block {name!r} differs from docs/samples/{name}.txt: " \
                                     "run docs/samples/regenerate.py instead of editing the README"
        recorded = json.loads((SAMPLES / f"{name}.json").read_text())
        assert recorded["command"].startswith("imagepipe ")
        assert re.fullmatch(r"[0-9a-f]{40}(\+uncommitted changes)?", recorded["commit"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", recorded["date"])


def test_shapes_ignore_numbers_and_paths_but_not_words():
    assert shape("pushed version 12 to outputs/a/serving/a/12") == shape("pushed version 1 to /tmp/x/b/1")
    assert shape("eval accuracy: 0.9811 (no baseline yet)") == ["eval accuracy: <n> (no baseline yet)"]
    assert shape("eval accuracy: 0.98") != shape("eval loss: 0.98")
    assert shape("a\nb") != shape("a")
    assert shape("pipeline digits-e2e, run x") == shape("pipeline digits, run x")


def test_the_validation_sample_is_what_validate_prints_now(tmp_path):
    (tmp_path / "pipelines").mkdir()
    spec = (REPO / "pipelines" / "digits.yaml").read_text()
    (tmp_path / "pipelines" / "digits.yaml").write_text(re.sub(r"min_accuracy: [0-9.]+", "min_accuracy: 1.5", spec))
    (tmp_path / "data" / "digits" / "0").mkdir(parents=True)
    result = subprocess.run([sys.executable, "-m", "imagepipe.cli", "validate", "pipelines/digits.yaml"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == sample("validate")


def bench_module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "bench"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "bench"))
    return module


def test_the_results_tables_are_what_the_results_files_say():
    summarize = bench_module("summarize")
    assert summarize.stale() == [], "run `python bench/summarize.py` instead of editing the tables by hand"
    how_well = {what: source for what, _, source in summarize.how_well_rows()}
    assert len(how_well) >= 5 and all("bench/results/" in source for source in how_well.values())


def test_every_results_file_records_commit_date_and_machine():
    for path in sorted((REPO / "bench" / "results").glob("*.json")):
        provenance = json.loads(path.read_text())["provenance"]
        assert re.fullmatch(r"[0-9a-f]{40}", provenance["commit"]), path
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", provenance["date"]), path
        assert "machine" in provenance, path


def test_new_results_record_their_provenance(tmp_path, monkeypatch):
    measure = bench_module("measure")
    monkeypatch.setattr(measure, "RESULTS", tmp_path)
    written = json.loads(measure.write_result("example", {"seconds": 1.5}).read_text())
    assert written["seconds"] == 1.5
    provenance = written["provenance"]
    assert re.fullmatch(r"[0-9a-f]{40}", provenance["commit"])
    machine = provenance["machine"]
    assert machine["cpus"] >= 1 and machine["memory_gib"] > 0 and machine["python"].startswith("3.10")
    assert machine["packages"]["tensorflow"] == "2.16.2" and machine["packages"]["tfx"] == "1.16.0"


def test_the_readme_field_tables_are_generated_from_the_spec_model():
    reference = bench_module_at(REPO / "docs" / "reference.py")
    assert reference.stale() == [], "run `python docs/reference.py` instead of editing the field tables by hand"
    assert "`trainer.augment.thicken`" in reference.tables()["spec"]


def bench_module_at(path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
