"""Spec validation: every bad field fails at once, naming the file, the field and the fix."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from imagepipe.spec import SpecError, json_schema, load_spec
from tests.conftest import REPO


def write_spec(tmp_path: Path, **overrides) -> Path:
    spec = yaml.safe_load((REPO / "pipelines" / "digits.yaml").read_text())
    for name in ("a_class", "b_class"):
        (tmp_path / "data" / name).mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / name / "x.png").write_bytes(b"x")
    spec["data"]["root"] = str(tmp_path / "data")
    for dotted, value in overrides.items():
        node = spec
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        if value is _DELETE:
            node.pop(leaf)
        else:
            node[leaf] = value
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


_DELETE = object()


def test_the_shipped_specs_are_valid():
    for path in sorted((REPO / "pipelines").glob("*.yaml")):
        assert load_spec(path, check_paths=False).spec.pipeline == path.stem


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"trainer__epoch": 3}, "trainer.epoch", "Extra inputs are not permitted"),
        ({"trainer__epochs": "many"}, "trainer.epochs", "valid integer"),
        ({"image__channels": 2}, "image.channels", "Input should be 1 or 3"),
        ({"evaluation__min_accuracy": 1.5}, "evaluation.min_accuracy", "less than or equal to 1"),
        ({"evaluation__max_accuracy_drop": -0.1}, "evaluation.max_accuracy_drop", "greater than or equal to 0"),
        ({"image": _DELETE}, "image", "is an image model"),
        ({"data__generate": {"kind": "sine"}}, "(top level)", "image models need image folders"),
        ({"trainer__module": "sine", "trainer__hyperparameters": {}, "trainer__augment": _DELETE}, "(top level)",
         "needs data.generate"),
        ({"trainer__module": "sine", "trainer__hyperparameters": {}}, "trainer",
         "sine does not use trainer.augment; fix: remove it"),
        ({"trainer__module": "mixmatch", "trainer__hyperparameters": {}, "trainer__mixed_precision": True}, "trainer",
         "mixmatch does not use trainer.augment, trainer.early_stopping_patience, trainer.mixed_precision; "
         "fix: remove them"),
        ({"trainer__module": "resnet9000"}, "trainer.module", "unknown trainer module"),
        ({"trainer__hyperparameters": {"filters": "wide"}}, "trainer", "hyperparameters.filters"),
        ({"pipeline": "../escape"}, "pipeline", "not a safe pipeline name"),
        ({"data__root": "a/{SPAN}/b/{SPAN}"}, "(top level)", "{SPAN} once"),
        ({"push": {"serving": False}}, "push", "a blessed model would go nowhere"),
        ({"output_dir": "gs://bucket/outputs"}, "output_dir", "object store in kubeflow.output_dir"),
    ],
)
def test_each_bad_field_names_file_field_and_fix(tmp_path, overrides, field, message):
    path = write_spec(tmp_path, **overrides)
    with pytest.raises(SpecError) as error:
        load_spec(path)
    text = str(error.value)
    assert str(path) in text
    assert f"`{field}`" in text
    assert message in text
    assert "fix:" in text


def test_missing_data_folder_is_reported_with_the_fix(tmp_path):
    path = write_spec(tmp_path, data__root=str(tmp_path / "nowhere"))
    with pytest.raises(SpecError, match=r"field `data.root`: folder .*nowhere does not exist; fix: "):
        load_spec(path)


def test_a_data_root_without_class_folders_is_reported_before_running(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "loose.png").write_bytes(b"not in a class folder")
    path = write_spec(tmp_path, data__root=str(flat))
    with pytest.raises(SpecError, match=r"field `data.root`: data root .* has no class folder with images.*fix: "):
        load_spec(path)


def test_yaml_errors_and_non_mappings_are_reported(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(SpecError, match="YAML mapping"):
        load_spec(bad)
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "absent.yaml")


def test_unsafe_yaml_tags_are_refused(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("pipeline: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(evil)


def test_relative_paths_resolve_against_the_project(tmp_path):
    (tmp_path / "pipelines").mkdir()
    for name in ("a_class", "b_class"):
        (tmp_path / "data" / "x" / name).mkdir(parents=True)
        (tmp_path / "data" / "x" / name / "x.png").write_bytes(b"x")
    spec = yaml.safe_load((REPO / "pipelines" / "digits.yaml").read_text())
    spec["data"]["root"] = "data/x"
    path = tmp_path / "pipelines" / "x.yaml"
    path.write_text(yaml.safe_dump(spec))
    loaded = load_spec(path)
    assert loaded.data_root == tmp_path / "data" / "x"
    assert loaded.output_dir == tmp_path / "outputs" / spec["pipeline"]


def test_the_committed_json_schema_is_current():
    committed = json.loads((REPO / "schemas" / "spec.schema.json").read_text())
    assert committed == json_schema(), "regenerate with: imagepipe schema --out schemas/spec.schema.json"


def test_beam_arguments_default_to_multi_processing_and_the_spec_wins(tmp_path):
    from imagepipe.run import beam_pipeline_args

    loaded = load_spec(write_spec(tmp_path, beam={"pipeline_args": ["--direct_num_workers=3"]}))
    args = beam_pipeline_args(loaded, "beam")
    assert args[0] == "--direct_running_mode=multi_processing"
    assert args[-1] == "--direct_num_workers=3"  # Beam takes the last value of a repeated flag
    assert beam_pipeline_args(loaded, "local") == ["--direct_num_workers=3"]
    # No arguments of its own on the local runner: with none, TFX does not package itself for each component.
    assert beam_pipeline_args(load_spec(write_spec(tmp_path)), "local") == []


@pytest.mark.parametrize("text, message", [
    ("pipeline: a\ntrainer: {epochs: 3}\ntrainer: {epochs: 4}\n", "`trainer` is given twice (lines 2 and 3)"),
    ("a: &a [x, x, x]\nb: &b [*a, *a, *a]\npipeline: *b\n", "an alias (*a) at line 2: specs do not use YAML anchors"),
    ("pipeline: [a\n", "not valid YAML at line 2, column 1: expected ',' or ']'"),
])
def test_yaml_traps_are_refused_with_the_line(tmp_path, text, message):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=re.escape(message)):
        load_spec(path, check_paths=False)


def test_a_billion_laughs_spec_is_refused_at_once(tmp_path):
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"{chr(c)}: &{chr(c)} [" + ", ".join([f"*{chr(c - 1)}"] * 9) + "]" for c in range(ord("b"), ord("j"))]
    (tmp_path / "laughs.yaml").write_text("\n".join(lines + ["pipeline: *i"]) + "\n")  # 9**9 strings if expanded
    with pytest.raises(SpecError, match="alias"):
        load_spec(tmp_path / "laughs.yaml", check_paths=False)


def test_a_spec_that_is_not_utf8_is_refused_with_the_fix(tmp_path):
    (tmp_path / "spec.yaml").write_bytes(b"pipeline: \xff\xfe\n")
    with pytest.raises(SpecError, match="not UTF-8 text .*fix: save the spec as UTF-8"):
        load_spec(tmp_path / "spec.yaml")


@pytest.mark.parametrize("overrides, field, message", [
    ({"trainer__seed": 2**40}, "trainer.seed", "less than or equal to 2147483647"),
    ({"data__train_buckets": 10**9}, "data.train_buckets", "less than or equal to 1000"),
    ({"trainer__learning_rate": float("nan")}, "trainer.learning_rate", "finite number"),
    ({"pipeline": "digits\n"}, "pipeline", "not a safe pipeline name"),
])
def test_out_of_range_numbers_and_names_are_refused(tmp_path, overrides, field, message):
    with pytest.raises(SpecError) as error:
        load_spec(write_spec(tmp_path, **overrides))
    assert f"`{field}`" in str(error.value) and message in str(error.value)


def test_one_class_or_a_folder_without_image_files_is_refused(tmp_path):
    path = write_spec(tmp_path)
    (tmp_path / "data" / "b_class" / "x.png").unlink()
    (tmp_path / "data" / "b_class").rmdir()
    with pytest.raises(SpecError, match=r"has one \(a_class\) class folder with image files; a classifier needs at least two"):
        load_spec(path)
    (tmp_path / "data" / "fifo_class").mkdir()
    os.mkfifo(tmp_path / "data" / "fifo_class" / "pipe.png")  # a "file" that is not one
    with pytest.raises(SpecError, match="one .a_class."):
        load_spec(path)
    (tmp_path / "data" / "c_class").mkdir()
    (tmp_path / "data" / "c_class" / "y.png").write_bytes(b"x")
    assert load_spec(path).spec.pipeline == "digits"


def test_an_output_dir_inside_the_data_is_refused(tmp_path):
    path = write_spec(tmp_path, output_dir=str(tmp_path / "data" / "outputs"))
    with pytest.raises(SpecError, match="field `output_dir`: .* is inside data.root"):
        load_spec(path, check_paths=False)


@pytest.mark.parametrize("command", [["validate", "pipelines/sine.yaml"], ["serving", "digits"], ["schema"],
                                     ["promote", "digits"], ["rollback", "digits"]])
def test_commands_that_read_yaml_or_folders_do_not_import_tensorflow(command, tmp_path):
    # Timing belongs in bench/; what makes these commands fast is that TensorFlow stays out.
    script = ("import sys\nfrom click.testing import CliRunner\nfrom imagepipe.cli import main\n"
              f"result = CliRunner().invoke(main, {command!r} + (['--output-dir', {str(tmp_path)!r}] "
              f"if {command[0]!r} in ('serving', 'promote', 'rollback') else []))\n"
              "print(result.exit_code, sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tfx', 'keras')))")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split(" ", 1)[1].strip() == "[]", result.stdout
