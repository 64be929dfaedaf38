"""The edge store's pieces: conversion, the hybrid refusal, the arena measurement, the bundle files."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from components.contracts import EdgeInfo
from components.edge_pusher import bundle, tflite_tools


@pytest.fixture(scope="module")
def small_model_dir(tmp_path_factory):
    """A small conv net exported the way the Trainer exports edge models."""
    from trainer_modules.edge_export import export_edge_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((12, 12, 1)), keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax"),
    ])

    class Inputs(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, examples):
            return {"inputs": tf.zeros([1, 12, 12, 1]), "label": tf.zeros([1], tf.int64)}

    export_dir = tmp_path_factory.mktemp("export")
    export_edge_model(model, (12, 12, 1), Inputs(), EdgeInfo("classification", ["a", "b", "c"], "none", "probabilities"),
                      str(export_dir))
    return str(export_dir / "model"), model


def calibration():
    return np.random.default_rng(0).uniform(0, 1, (20, 12, 12, 1)).astype(np.float32)


def test_int8_model_is_full_integer_and_close_to_keras(small_model_dir):
    saved_model, keras_model = small_model_dir
    model = tflite_tools.convert_int8(saved_model, calibration())
    tflite_tools.check_full_integer(model)
    assert tflite_tools.op_names(model) == ["CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "RESHAPE", "SOFTMAX"]
    inputs, outputs = tflite_tools.io_details(model)
    samples = calibration()[:5]
    quantized = tflite_tools.quantize(samples, *inputs["quantization"])
    micro = tflite_tools.dequantize(tflite_tools.run_micro(model, quantized), *outputs["quantization"])
    np.testing.assert_allclose(micro, keras_model.predict(samples, verbose=0), atol=0.03)


def test_samples_split_over_worker_processes_give_the_same_outputs_in_the_same_order(small_model_dir):
    from components.edge_pusher import micro_runs

    model = tflite_tools.convert_int8(small_model_dir[0], calibration())
    inputs, _ = tflite_tools.io_details(model)
    samples = np.random.default_rng(1).uniform(0, 1, (3 * micro_runs.MIN_SAMPLES_PER_WORKER, 12, 12, 1))
    quantized = tflite_tools.quantize(samples.astype(np.float32), *inputs["quantization"])
    one_process = micro_runs.run(model, quantized)
    assert len(np.unique(one_process.argmax(axis=1))) > 1  # the samples do not all give one answer
    np.testing.assert_array_equal(micro_runs.run_on_all_cores(model, quantized, workers=2), one_process)


def test_a_dynamic_range_model_is_refused(small_model_dir):
    converter = tf.lite.TFLiteConverter.from_saved_model(small_model_dir[0])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: int8 weights, float activations
    with pytest.raises(tflite_tools.NotMicroReady, match="hybrid"):
        tflite_tools.check_full_integer(converter.convert())


def test_float_model_is_refused_for_microcontrollers(small_model_dir):
    with pytest.raises(tflite_tools.NotMicroReady):
        tflite_tools.check_full_integer(tflite_tools.convert_float(small_model_dir[0]))


def test_arena_is_the_smallest_that_runs(small_model_dir):
    model = tflite_tools.convert_int8(small_model_dir[0], calibration())
    sample = np.zeros((12, 12, 1), np.int8)
    arena = tflite_tools.measure_arena_bytes(model, sample)
    assert tflite_tools.runs_in_arena(model, sample, arena)
    assert not tflite_tools.runs_in_arena(model, sample, arena - 16)
    # Activations alone: the conv output (10x10x4) and the pooled map (5x5x4), int8.
    assert arena > 10 * 10 * 4


@pytest.mark.parametrize("op, method", [
    ("CONV_2D", "AddConv2D"), ("DEPTHWISE_CONV_2D", "AddDepthwiseConv2D"), ("FULLY_CONNECTED", "AddFullyConnected"),
    ("MAX_POOL_2D", "AddMaxPool2D"), ("AVERAGE_POOL_2D", "AddAveragePool2D"), ("RELU6", "AddRelu6"),
    ("RESIZE_BILINEAR", "AddResizeBilinear"), ("L2_NORMALIZATION", "AddL2Normalization"), ("SOFTMAX", "AddSoftmax"),
])
def test_resolver_methods_are_tflite_micro_names(op, method):
    assert bundle.resolver_method(op) == method


def test_c_identifiers():
    assert bundle.c_identifier("digits-mobilenet-transfer") == "digits_mobilenet_transfer"
    assert bundle.c_identifier("3d-shapes") == "m_3d_shapes"


def test_bundle_is_written_whole_and_never_overwritten(tmp_path):
    base = tmp_path / "edge" / "p"
    sources = bundle.render_sources("p", 1, b"\x01\x02\xff", ["FULLY_CONNECTED"])
    assert "0x01, 0x02, 0xff," in sources["model_data.cc"]
    assert "p_model_data_len = 3;" in sources["model_data.cc"]
    bundle.write_bundle(base, 1, {"model_int8.tflite": b"\x01\x02\xff", **sources}, {"version": 1})
    manifest = json.loads((base / "1" / "manifest.json").read_text())
    assert manifest["files"]["model_int8.tflite"]["bytes"] == 3
    assert (base / "latest").read_text() == "1\n"
    with pytest.raises(FileExistsError):
        bundle.write_bundle(base, 1, {"model_int8.tflite": b"other"}, {"version": 1})
    assert (base / "1" / "model_int8.tflite").read_bytes() == b"\x01\x02\xff"
    bundle.write_bundle(base, 2, {"model_int8.tflite": b"\x03"}, {"version": 2})
    assert (base / "latest").read_text() == "2\n"
    assert sorted(p.name for p in base.iterdir()) == ["1", "2", "latest"]  # no staging folder left behind


def test_a_converter_failure_becomes_a_refusal_with_the_reason(small_model_dir, monkeypatch):
    from tensorflow.lite.python.convert import ConverterError

    def fail(*args):
        raise ConverterError("'tfl.sin' op is not supported in int8")

    monkeypatch.setattr(tflite_tools, "convert_int8", fail)
    with pytest.raises(tflite_tools.NotMicroReady, match="tfl.sin"):
        tflite_tools.convert_for_micro(small_model_dir[0], calibration())


def test_convert_for_micro_gives_float_and_full_integer_models(small_model_dir):
    model_float, model_int8 = tflite_tools.convert_for_micro(small_model_dir[0], calibration())
    tflite_tools.check_full_integer(model_int8)
    assert len(model_int8) < len(model_float)


def test_a_refusal_without_numbers_is_described():
    from imagepipe.describe import describe_edge

    text = describe_edge({"metric": "accuracy", "error": "no full-integer model: x", "checks": {}, "pushed": False})
    assert text == "edge: not pushed: no full-integer model: x"


def test_a_stopped_push_leaves_latest_behind_and_the_rerun_repairs_it(tmp_path):
    base = tmp_path / "edge" / "p"
    bundle.write_bundle(base, 1, {"model_int8.tflite": b"\x01"}, {"version": 1})
    bundle.write_bundle(base, 2, {"model_int8.tflite": b"\x02"}, {"version": 2})
    (base / "latest").write_text("1\n")  # stopped between the version folder and `latest`
    (base / "3").mkdir()  # and a version folder without its manifest is never `latest`
    bundle.repair_latest(base)
    assert (base / "latest").read_text() == "2\n"


def measurement(model_bytes: int, arena: int, float_score=0.98, int8_score=0.97):
    from components.edge_pusher.executor import Measurement

    detail = {"shape": [1, 128, 128, 3], "dtype": np.int8, "quantization": (0.0039, -128)}
    return Measurement("classification", "accuracy", b"f" * (model_bytes * 4), b"i" * model_bytes, detail,
                       {"shape": [1, 4], "dtype": np.int8, "quantization": (0.0039, -128)}, arena, float_score,
                       int8_score, 100, np.zeros((1, 128, 128, 3), np.int8), np.zeros((1, 4), np.int8), ["x"])


def test_a_refusal_names_each_failed_limit_with_both_numbers_and_what_would_fit():
    from components.edge_pusher.executor import decide
    from imagepipe.describe import describe_edge

    report = decide(measurement(1_240_112, 1_060_000), 0.01, 1 << 20, 256 << 10)
    assert report["checks"] == {"int8_within_tolerance": True, "fits_flash": False, "fits_ram": False}
    assert report["refused_because"] == ["int8 model 1,240,112 B > flash budget 1,048,576 B",
                                         "tensor arena 1,060,000 B > RAM budget 262,144 B"]
    assert "an input of about 63x63 (image.height/width; now 128x128)" in report["what_would_fit"]
    assert "about 85% of the parameters" in report["what_would_fit"]
    text = describe_edge({**report, "pushed": False})
    assert text.startswith("edge: not pushed: int8 model 1,240,112 B > flash budget 1,048,576 B; tensor arena")
    assert "what would fit: an input of about 63x63" in text


def test_an_int8_model_that_lost_too_much_is_refused_with_both_scores():
    from components.edge_pusher.executor import decide

    report = decide(measurement(1000, 1000, float_score=0.95, int8_score=0.90), 0.01, 1 << 20, 256 << 10)
    assert report["refused_because"] == ["int8 accuracy 0.9000 vs float 0.9500: 0.0500 worse > max_int8_degradation 0.01"]
    assert "what_would_fit" not in report


def device_figures(arena=55_796, other_static=1_356, model=453_504, runtime=48_940, bit_exact=True):
    return {"target": "cortex-m4f", "arena_bytes": arena, "ram_bytes": arena + other_static,
            "ram_other_static_bytes": other_static, "flash_bytes": model + runtime, "flash_model_bytes": model,
            "flash_runtime_bytes": runtime, "golden_bit_exact": bit_exact, "golden_mismatches": [] if bit_exact else [2]}


def test_with_a_device_check_the_budgets_count_the_devices_ram_and_the_firmwares_flash():
    from components.edge_pusher.executor import decide

    # The wrapper's arena (57,264) fits 57,000 B of RAM no more than the device's arena plus static RAM does.
    report = decide(measurement(453_504, 57_264), 0.01, 500_000, 57_000, device_figures(), flash_counts_runtime=True)
    assert report["checks"] == {"int8_within_tolerance": True, "fits_flash": False, "fits_ram": False,
                                "device_check": True}
    assert report["refused_because"] == [
        "cortex-m4f firmware 502,444 B (model 453,504 + runtime 48,940) > flash budget 500,000 B",
        "cortex-m4f RAM 57,152 B (arena 55,796 + other static 1,356) > RAM budget 57,000 B"]
    assert "about 99% of the parameters" in report["what_would_fit"]
    # The same budgets without counting the runtime, and a device that needs less RAM than the wrapper says.
    report = decide(measurement(453_504, 57_264), 0.01, 500_000, 57_200, device_figures())
    assert report["passed"] and report["device"]["arena_bytes"] == 55_796


def test_a_device_that_computes_other_outputs_or_cannot_build_refuses_the_push_with_the_reason():
    from components.edge_pusher.executor import decide

    report = decide(measurement(1000, 1000), 0.01, 1 << 20, 256 << 10, device_figures(bit_exact=False))
    assert report["refused_because"] == ["golden vectors [2] differ on the TFLite Micro library (cortex-m4f)"]
    broken = {"target": "cortex-m4f", "error": "arm-none-eabi-g++ is not on PATH"}
    report = decide(measurement(1000, 1000), 0.01, 1 << 20, 256 << 10, broken, flash_counts_runtime=True)
    assert report["checks"]["device_check"] is False and report["checks"]["fits_flash"] is True
    assert report["refused_because"] == ["device check on cortex-m4f failed: arm-none-eabi-g++ is not on PATH"]


def test_a_runtime_larger_than_the_flash_budget_says_no_model_fits():
    from components.edge_pusher.executor import decide

    report = decide(measurement(2_384, 1_068), 0.01, 20_000, 256 << 10, device_figures(model=2_384, runtime=32_500),
                    flash_counts_runtime=True)
    assert "above the TFLite Micro runtime's 32,500 B (cortex-m4f)" in report["what_would_fit"]


def test_golden_vectors_cover_every_class_or_the_input_range():
    from components.edge_pusher.executor import GOLDEN_POINTS, golden_choice

    labels = np.array([3, 3, 0, 1, 3, 2, -1, 1])  # -1: unlabelled, never a golden class
    chosen = golden_choice("classification", np.zeros((8, 4, 4, 1), np.int8), labels)
    assert [index for index, _ in chosen] == [2, 3, 5, 0]
    assert [source for _, source in chosen][0] == "eval example, label 0"
    x = np.array([[v] for v in range(-128, 128, 3)], np.int8)[np.random.default_rng(0).permutation(86)]
    points = golden_choice("regression", x, np.zeros(len(x)))
    values = [int(x[index, 0]) for index, _ in points]
    assert len(points) == GOLDEN_POINTS and values == sorted(values) and values[0] == -128 and values[-1] == 127
