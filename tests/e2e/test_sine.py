"""The TinyML hello world through the real pipeline: pipelines/sine.yaml, end to end (about a minute).

The pushed edge bundle must verify (manifest, C array, op resolver, golden
vectors bit-exact in TFLite Micro and the TFLite reference kernels, minimal
arena), compile with g++, fit the book's 2,488 bytes, and approximate sin(x)
within 0.05 in TFLite Micro.
"""
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml

from components.edge_pusher import tflite_tools
from components.edge_pusher.verify import BundleMismatch, verify_bundle
from imagepipe import results
from tests.conftest import REPO, imagepipe
from tests.imagepipe.test_notify import local_webhook

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
BOOK_MODEL_BYTES = 2488  # the TinyML book's quantized hello-world model



@pytest.fixture(scope="module")
def sine_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sine")
    spec = yaml.safe_load((REPO / "pipelines" / "sine.yaml").read_text())
    spec["data"]["root"] = str(root / "data" / "sine")
    spec["output_dir"] = str(root / "outputs")
    spec_path = root / "sine.yaml"
    with local_webhook() as (url, received):
        spec["notify"] = {"webhook": url}
        spec_path.write_text(yaml.safe_dump(spec))
        result = imagepipe("run", str(spec_path), "--json")
    assert result.returncode == results.EXIT_PUSHED, result.stderr[-4000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    summary["notified"] = received
    return root, spec_path, spec, summary


def test_the_webhook_received_the_same_summary(sine_run):
    *_, summary = sine_run
    notified = summary.pop("notified")
    assert notified == [{key: value for key, value in summary.items()}]
    assert notified[0]["status"] == "pushed"


def bundle_dir(root):
    return root / "outputs" / "sine" / "edge" / "sine" / "1"


def test_run_pushes_serving_and_edge_as_the_same_version(sine_run):
    root, _, spec, summary = sine_run
    assert summary["status"] == "pushed" and summary["pushed_version"] == 1
    assert summary["mean_absolute_error"] <= spec["evaluation"]["max_mean_absolute_error"]
    assert summary["edge"]["pushed"] and summary["edge"]["version"] == 1
    assert (root / "outputs" / "sine" / "serving" / "sine" / "1" / "saved_model.pb").is_file()
    assert (root / "outputs" / "sine" / "edge" / "sine" / "latest").read_text().strip() == "1"


def test_bundle_verifies_against_its_manifest_in_tflite_micro(sine_run):
    manifest = verify_bundle(bundle_dir(sine_run[0]))
    assert manifest["pipeline"] == "sine" and manifest["version"] == 1
    assert manifest["ops"] == ["FULLY_CONNECTED"]
    assert manifest["input"]["dtype"] == manifest["output"]["dtype"] == "int8"
    assert manifest["input"]["shape"] == [1, 1]
    assert manifest["arena_bytes"] <= sine_run[2]["push"]["edge"]["ram_budget_bytes"]
    golden = json.loads((bundle_dir(sine_run[0]) / "golden.json").read_text())
    xs = [row[0] for row in golden["inputs"][:-2]]  # points across [0, 2 pi], then the int8 extremes
    assert len(xs) >= 6 and xs == sorted(xs) and xs[-1] - xs[0] > 200


def test_int8_model_is_smaller_than_the_books_and_tracks_sin_x_in_tflite_micro(sine_run):
    directory = bundle_dir(sine_run[0])
    manifest = json.loads((directory / "manifest.json").read_text())
    model = (directory / "model_int8.tflite").read_bytes()
    assert len(model) <= BOOK_MODEL_BYTES
    x = np.linspace(0, 2 * np.pi, 1000, dtype=np.float32)[:, None]
    quantized = tflite_tools.quantize(x, manifest["input"]["scale"], manifest["input"]["zero_point"])
    y = tflite_tools.dequantize(tflite_tools.run_micro(model, quantized, manifest["arena_bytes"]),
                                manifest["output"]["scale"], manifest["output"]["zero_point"])
    assert np.mean(np.abs(y[:, 0] - np.sin(x[:, 0]))) <= 0.05


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
def test_c_array_compiles_and_holds_the_model(sine_run, tmp_path):
    directory = bundle_dir(sine_run[0])
    shutil.copy(directory / "model_data.cc", tmp_path)
    shutil.copy(directory / "model_data.h", tmp_path)
    (tmp_path / "size.cc").write_text(
        '#include <cstdio>\n#include "model_data.h"\n'
        'int main() { std::printf("%u %u", sine_model_data_len, (unsigned)((unsigned long)sine_model_data % 16)); }\n')
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-c", "model_data.cc"], cwd=tmp_path, check=True)
    subprocess.run(["g++", "-std=c++17", "-o", "size", "size.cc", "model_data.o"], cwd=tmp_path, check=True)
    length, misalignment = subprocess.run(["./size"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert int(length) == (directory / "model_int8.tflite").stat().st_size
    assert int(misalignment) == 0


def test_serving_model_answers_x_with_sin_x(sine_run):
    model = tf.saved_model.load(str(sine_run[0] / "outputs" / "sine" / "serving" / "sine" / "1"))
    x = tf.constant([0.5, 1.5707964, 4.712389], tf.float32)
    y = model.signatures["serving_default"](x=x)["y"].numpy()
    np.testing.assert_allclose(y, np.sin(x.numpy()), atol=0.15)


def copied_bundle(sine_run, tmp_path):
    """The pushed bundle copied out of its store: a bundle verifies on its own."""
    copy = tmp_path / "copied-bundle"
    shutil.copytree(bundle_dir(sine_run[0]), copy)
    return copy


def reseal(copy, name):
    """Record a tampered file's new size and sha256 in the manifest, so that only the step under test can notice."""
    manifest = json.loads((copy / "manifest.json").read_text())
    data = (copy / name).read_bytes()
    manifest["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (copy / "manifest.json").write_text(json.dumps(manifest))


def test_a_bundle_copied_out_of_its_store_verifies(sine_run, tmp_path):
    assert verify_bundle(copied_bundle(sine_run, tmp_path))["version"] == 1


def tamper_files(copy):
    with open(copy / "op_resolver.h", "a") as f:
        f.write("// edited\n")  # still registers the same ops: only the size and sha256 can tell


def tamper_c_array(copy):
    source = (copy / "model_data.cc").read_text()
    first = source.index("0x", source.index("= {"))
    flipped = f"0x{int(source[first + 2:first + 4], 16) ^ 0x01:02x}"
    (copy / "model_data.cc").write_text(source[:first] + flipped + source[first + 4:])
    reseal(copy, "model_data.cc")


def tamper_ops(copy):
    text = (copy / "op_resolver.h").read_text()
    (copy / "op_resolver.h").write_text(text.replace("AddFullyConnected", "AddSoftmax"))
    reseal(copy, "op_resolver.h")


def tamper_golden(copy):
    golden = json.loads((copy / "golden.json").read_text())
    golden["outputs"][0][0] = (golden["outputs"][0][0] + 1) % 128
    (copy / "golden.json").write_text(json.dumps(golden))
    reseal(copy, "golden.json")


def tamper_arena(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["arena_bytes"] += 64  # still runs, but is no longer the measured minimum
    (copy / "manifest.json").write_text(json.dumps(manifest))


def tamper_model_quantization(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["input"]["zero_point"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("step, tamper, message", [
    ("files", tamper_files, "op_resolver.h: .* bytes, manifest says"),
    ("c_array", tamper_c_array, "model_data.cc does not hold model_int8.tflite"),
    ("model", tamper_model_quantization, "input quantization"),
    ("ops", tamper_ops, "op_resolver.h registers"),
    ("golden", tamper_golden, "TFLite Micro outputs differ from golden.json"),
    ("arena", tamper_arena, "is not the measured minimum"),
])
def test_each_verification_step_catches_its_own_tampering_alone(sine_run, tmp_path, step, tamper, message):
    copy = copied_bundle(sine_run, tmp_path)
    tamper(copy)
    with pytest.raises(BundleMismatch) as failure:
        verify_bundle(copy)
    assert list(failure.value.problems) == [step], failure.value.problems
    assert any(re.search(message, problem) for problem in failure.value.problems[step]), failure.value.problems


def test_a_model_over_the_ram_budget_is_not_pushed_to_the_edge(sine_run):
    root, _, spec, _ = sine_run
    tight = dict(spec, push=dict(spec["push"], edge=dict(spec["push"]["edge"], ram_budget_bytes=100)))
    tight_path = root / "sine-tight.yaml"
    tight_path.write_text(yaml.safe_dump(tight))
    result = imagepipe("run", str(tight_path), "--json")
    assert result.returncode == results.EXIT_NOT_BLESSED, result.stderr[-4000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "edge_not_pushed"
    assert summary["edge"]["checks"] == {"int8_within_tolerance": True, "fits_flash": True, "fits_ram": False}
    assert summary["edge"]["arena_bytes"] > 100
    assert "Trainer" in summary["cached"]  # only the EdgePusher had to run again
    assert sorted(p.name for p in (root / "outputs" / "sine" / "edge" / "sine").iterdir()) == ["1", "latest"]

    history = imagepipe("runs", str(tight_path), "--json")
    assert history.returncode == 0, history.stderr[-2000:]
    rows = [json.loads(line) for line in history.stdout.strip().splitlines()]
    assert [row["status"] for row in rows] == ["pushed", "edge_not_pushed"]
    assert rows[0]["pushed_version"] == 1 and rows[0]["span"] == 0
    assert rows[0]["mean_absolute_error"] == pytest.approx(rows[1]["mean_absolute_error"])  # the same cached model
    table = imagepipe("runs", str(tight_path))
    assert "runs of sine" in table.stdout and "edge_not_pushed" in table.stdout


@pytest.mark.slow  # the beam runner is exercised in CI by tests/e2e/test_retraining.py
def test_the_same_spec_runs_on_the_beam_runner(sine_run, tmp_path):
    """BeamDagRunner, components' Beam jobs on the DirectRunner in multi-processing mode."""
    spec = dict(sine_run[2], output_dir=str(tmp_path / "outputs"))
    spec_path = tmp_path / "sine.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    result = imagepipe("run", str(spec_path), "--runner", "beam")
    assert result.returncode == results.EXIT_PUSHED, result.stderr[-4000:]
    assert "runner: beam" in result.stderr
    for node in ("CsvExampleGen", "StatisticsGen", "Trainer", "Evaluator", "Pusher", "EdgePusher"):
        assert f"running {node}" in result.stderr
    verify_bundle(tmp_path / "outputs" / "sine" / "edge" / "sine" / "1")


def first_epoch_loss(stderr: str) -> float:
    line = next(line for line in stderr.splitlines() if "epoch 1/" in line)
    return float(line.split("loss=")[1].split()[0])


@pytest.mark.slow  # warm start and canary are exercised in CI by tests/e2e/test_retraining.py
def test_a_new_data_drop_warm_starts_from_the_blessed_model_and_becomes_canary(tmp_path):
    from components import serving_rollout

    spec = yaml.safe_load((REPO / "pipelines" / "sine.yaml").read_text())
    spec["trainer"]["warm_start"] = True
    spec["output_dir"] = str(tmp_path / "outputs")
    spec["data"]["root"] = str(tmp_path / "week1")
    week1 = tmp_path / "week1.yaml"
    week1.write_text(yaml.safe_dump(spec))
    first = imagepipe("run", str(week1))
    assert first.returncode == results.EXIT_PUSHED, first.stderr[-4000:]
    assert first_epoch_loss(first.stderr) > 0.1  # from scratch

    again = imagepipe("run", str(week1), "--json")
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert "Trainer" in summary["cached"]  # its own model is no starting point: the re-run stays cached

    spec["data"]["root"] = str(tmp_path / "week2")
    spec["data"]["generate"]["seed"] = 2  # new samples: a new data drop
    week2 = tmp_path / "week2.yaml"
    week2.write_text(yaml.safe_dump(spec))
    second = imagepipe("run", str(week2))
    assert second.returncode == results.EXIT_PUSHED, second.stderr[-4000:]
    assert first_epoch_loss(second.stderr) < 0.05  # starts where week 1 ended
    assert "pushed version 2 to" in second.stdout
    rollout = serving_rollout.read(tmp_path / "outputs" / "sine" / "serving")
    assert (rollout.stable, rollout.canary) == (1, 2)


def test_the_run_report_has_every_section_and_renders_in_chromium(sine_run):
    from tests.e2e.report_checks import check_report, screenshot

    _, _, _, summary = sine_run
    report = Path(summary["report"])
    # x/y scatter, training curves
    check_report(report, expected_charts=2, must_contain=["eval mean absolute error", "int8 .tflite bytes",
                                                          "float / int8 mean absolute error"])
    screenshot(report)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("target", ["host", "cortex-m4f"])
def test_the_bundle_runs_bit_exact_on_the_tflm_library_in_less_arena_than_the_wrapper_says(
        sine_run, tflm_source, target):
    """The bundle's own sources built with the TFLite Micro C++ library (on Cortex-M4F: cross-compiled and
    run under QEMU): golden outputs bit for bit, the device's arena below the wrapper's host figure, and a
    minimal firmware's flash split into model and runtime."""
    result = imagepipe("edge", "device-check", str(bundle_dir(sine_run[0])), "--tflm-source", str(tflm_source),
                       "--target", target, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    manifest = json.loads((bundle_dir(sine_run[0]) / "manifest.json").read_text())
    assert figures["golden_bit_exact"] and figures["golden_vectors"] == len(
        json.loads((bundle_dir(sine_run[0]) / "golden.json").read_text())["outputs"])
    # The wrapper's recording allocator keeps its bookkeeping in the arena: a device needs less.
    assert 256 < figures["arena_bytes"] < manifest["arena_bytes"], figures
    assert figures["flash_model_bytes"] == manifest["files"]["model_int8.tflite"]["bytes"]
    # The interpreter, the allocator and the kernels: tens of kilobytes beside a 2 KB model.
    assert 10_000 < figures["flash_runtime_bytes"] < 200_000, figures
    assert figures["ram_bytes"] == figures["arena_bytes"] + figures["ram_other_static_bytes"]


def test_the_device_check_fails_when_the_library_computes_other_outputs_than_golden(sine_run, tflm_source, tmp_path):
    copy = copied_bundle(sine_run, tmp_path)
    tamper_golden(copy)
    result = imagepipe("edge", "device-check", str(copy), "--tflm-source", str(tflm_source), "--target", "host")
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    assert "golden vectors [0] of" in result.stdout and "DIFFER" in result.stdout, result.stdout


@pytest.mark.timeout(1200)
def test_push_edge_device_records_the_targets_figures_and_gates_on_firmware_flash(sine_run, tflm_source, tmp_path):
    """push.edge.device: the EdgePusher builds every candidate on the TFLM library for Cortex-M4F (under QEMU),
    records the device's figures in the manifest, and with flash_counts_runtime gates on a firmware's flash."""
    spec = {key: value for key, value in sine_run[2].items() if key != "notify"}
    spec["output_dir"] = str(tmp_path / "outputs")
    device = {"tflm_source": str(tflm_source), "target": "cortex-m4f", "flash_counts_runtime": True}
    # 64 KiB of flash: room for the model and the TFLM runtime (sine.yaml's 4 KiB budget counts the model alone).
    spec["push"] = dict(spec["push"], edge=dict(spec["push"]["edge"], device=device, flash_budget_bytes=65536))
    spec_path = tmp_path / "sine-device.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    result = imagepipe("run", str(spec_path), "--json")
    assert result.returncode == results.EXIT_PUSHED, result.stdout[-3000:] + result.stderr[-3000:]
    edge = json.loads(result.stdout.strip().splitlines()[-1])["edge"]
    assert edge["checks"]["device_check"] is True, edge
    manifest = json.loads((tmp_path / "outputs" / "sine" / "edge" / "sine" / "1" / "manifest.json").read_text())
    figures = manifest["devices"]["cortex-m4f"]
    assert figures["golden_bit_exact"] and figures["arena_bytes"] < manifest["arena_bytes"], figures
    assert figures["flash_bytes"] == figures["flash_model_bytes"] + figures["flash_runtime_bytes"]
    verified = imagepipe("edge", "verify", str(tmp_path / "outputs" / "sine" / "edge" / "sine" / "1"))
    assert verified.returncode == 0 and f"cortex-m4f: arena {figures['arena_bytes']} bytes" in verified.stdout, \
        verified.stdout + verified.stderr[-2000:]

    # A budget the model alone fits (about 2.4 KB) but a firmware with the TFLM runtime does not.
    spec["push"]["edge"]["flash_budget_bytes"] = 20_000
    spec_path.write_text(yaml.safe_dump(spec))
    result = imagepipe("run", str(spec_path), "--json")
    assert result.returncode == results.EXIT_NOT_BLESSED, result.stderr[-4000:]
    edge = json.loads(result.stdout.strip().splitlines()[-1])["edge"]
    assert edge["checks"] == {"int8_within_tolerance": True, "fits_flash": False, "fits_ram": True, "device_check": True}
    assert re.fullmatch(r"cortex-m4f firmware [\d,]+ B \(model [\d,]+ \+ runtime [\d,]+\) > flash budget 20,000 B",
                        edge["refused_because"][0]), edge["refused_because"]
