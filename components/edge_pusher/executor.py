"""EdgePusher executor: convert, measure, gate, write the bundle.

1. Load the Trainer's edge export (Format-Edge/: a batch-1 SavedModel of the
   bare model, and a SavedModel that turns tf.Examples into its inputs).
2. Convert to float32 and full-integer int8 TFLite; the int8 calibration data
   are drawn from the train split.
3. Measure on the eval split: the float model in the TFLite interpreter, the
   int8 model in the TFLite Micro interpreter, with the smallest arena it runs
   in. Accuracy for classifiers, mean absolute error for regressors.
   With push.edge.device: also build and run it on the TFLite Micro C++ library
   for the target (device_check.py): bit-exact golden vectors, the device's
   arena, flash and RAM, which the budgets then use.
4. Push only if int8 is within tolerance of float and fits the device budget;
   the numbers are reported (edge_report.json, artifact properties) either way.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from components import versioned_store
from components.contracts import (
    CLASSIFICATION,
    EDGE_EXPORT_INPUTS,
    EDGE_EXPORT_MODEL,
    EDGE_REPORT_FILE,
    SHORT_METRIC,
    DeviceCheckSpec,
    EdgeInfo,
    edge_export_dir,
    write_json,
)
from components.edge_pusher import bundle, device_check, tflite_tools

GOLDEN_POINTS = 8  # regressors: eval points spread over the input range


def golden_choice(task: str, quantized_inputs: np.ndarray, labels: np.ndarray) -> List[Tuple[int, str]]:
    """Which eval examples become golden vectors, and why: one of each class (so a kernel that gets one class
    wrong cannot pass), or for a regressor points across the input range; each (index, source)."""
    if task == CLASSIFICATION:
        return [(int(np.flatnonzero(labels == label)[0]), f"eval example, label {int(label)}")
                for label in np.unique(labels[labels >= 0])]
    first_feature = quantized_inputs.reshape(len(quantized_inputs), -1)[:, 0]
    order = np.argsort(first_feature, kind="stable")
    picks = sorted({int(order[i]) for i in np.linspace(0, len(order) - 1, GOLDEN_POINTS).round().astype(int)},
                   key=lambda index: first_feature[index])
    return [(index, f"eval example, input {int(first_feature[index])} (int8)") for index in picks]


def read_split(examples, split: str) -> tf.data.Dataset:
    files = sorted(fileio.glob(os.path.join(artifact_utils.get_split_uri([examples], split), "*")))
    return tf.data.TFRecordDataset(files, compression_type="GZIP")


def model_inputs(to_inputs, records: tf.data.Dataset) -> Tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) as the model sees them, through the Trainer's own preprocessing."""
    inputs, labels = [], []
    for batch in records.batch(256):
        out = to_inputs(examples=batch)
        inputs.append(out["inputs"].numpy())
        labels.append(out["label"].numpy())
    return np.concatenate(inputs), np.concatenate(labels)


def score(task: str, outputs: np.ndarray, labels: np.ndarray) -> float:
    if task == CLASSIFICATION:
        keep = labels >= 0  # -1 marks unlabelled images
        return float(np.mean(np.argmax(outputs[keep], axis=-1) == labels[keep]))
    return float(np.mean(np.abs(outputs.reshape(-1) - labels.reshape(-1))))


def degradation(task: str, float_score: float, int8_score: float) -> float:
    """How much worse int8 is: accuracy points lost, or mean absolute error gained."""
    return float_score - int8_score if task == CLASSIFICATION else int8_score - float_score


def tensor_description(detail: Dict[str, Any]) -> Dict[str, Any]:
    scale, zero_point = detail["quantization"]
    return {"shape": [int(d) for d in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name,
            "scale": float(scale), "zero_point": int(zero_point)}


@dataclasses.dataclass
class Measurement:
    """The converted models and what they do on the eval split."""

    task: str
    metric: str
    model_float: bytes
    model_int8: bytes
    input_detail: Dict[str, Any]
    output_detail: Dict[str, Any]
    arena_bytes: int
    float_score: float
    int8_score: float
    eval_samples: int
    golden_inputs: np.ndarray
    golden_outputs: np.ndarray
    golden_sources: List[str]


def measure(to_inputs, saved_model_dir: str, examples, task: str, representative_samples: int) -> Measurement:
    """Convert to float and full-integer int8 TFLite, then run both on the eval split: the float model in
    TFLite (the yardstick), the int8 model in TFLite Micro (the device's code) in the smallest arena it runs in.
    Raises tflite_tools.NotMicroReady when no full-integer model can be made."""
    # Calibration samples: a seeded shuffle of the train split, so every class is represented.
    calibration, _ = model_inputs(to_inputs, read_split(examples, "train").shuffle(10000, seed=0)
                                  .take(representative_samples))
    eval_inputs, eval_labels = model_inputs(to_inputs, read_split(examples, "eval"))
    logging.info("EdgePusher: converting (%d calibration samples, %d eval samples)", len(calibration), len(eval_inputs))
    model_float, model_int8 = tflite_tools.convert_for_micro(saved_model_dir, calibration)
    input_detail, output_detail = tflite_tools.io_details(model_int8)
    quantized_eval = tflite_tools.quantize(eval_inputs, *input_detail["quantization"])
    arena_bytes = tflite_tools.measure_arena_bytes(model_int8, quantized_eval[0])
    float_score = score(task, tflite_tools.run_tflite(model_float, eval_inputs, reference_kernels=False), eval_labels)
    micro_outputs = tflite_tools.run_micro(model_int8, quantized_eval, arena_bytes)
    int8_score = score(task, tflite_tools.dequantize(micro_outputs, *output_detail["quantization"]), eval_labels)
    chosen = golden_choice(task, quantized_eval, eval_labels)
    # And the extremes of the input range, which real data rarely reaches: saturation paths run too.
    extremes = np.stack([np.full(quantized_eval.shape[1:], value, np.int8) for value in (-128, 127)])
    golden_inputs = np.concatenate([quantized_eval[[index for index, _ in chosen]], extremes])
    golden_outputs = np.concatenate([micro_outputs[[index for index, _ in chosen]],
                                     tflite_tools.run_micro(model_int8, extremes, arena_bytes)])
    sources = [source for _, source in chosen] + ["every input at -128 (int8 minimum)", "every input at 127 (int8 maximum)"]
    return Measurement(task, SHORT_METRIC[task], model_float, model_int8, input_detail, output_detail, arena_bytes,
                       float_score, int8_score, int(len(eval_inputs)), golden_inputs, golden_outputs, sources)


def what_would_fit(measured: Measurement, flash_budget: int, ram_budget: int, ram_used: int, runtime_flash: int,
                   target: str) -> str:
    """A concrete way out when a model does not fit: the tensor arena grows with the input's pixels,
    the flash with the parameters (beside the TFLite Micro runtime, when the budget counts it)."""
    hints = []
    if ram_used > ram_budget and len(measured.input_detail["shape"]) == 4:
        _, height, width, _ = measured.input_detail["shape"]
        shrink = (ram_budget / ram_used) ** 0.5
        hints.append(f"an input of about {max(8, int(height * shrink))}x{max(8, int(width * shrink))} "
                     f"(image.height/width; now {height}x{width}) to bring the arena within the RAM budget")
    if runtime_flash >= flash_budget:
        hints.append(f"a flash budget above the TFLite Micro runtime's {runtime_flash:,} B ({target}): no model "
                     "fits beside it in this one")
    elif len(measured.model_int8) + runtime_flash > flash_budget:
        share = (flash_budget - runtime_flash) / len(measured.model_int8)
        hints.append(f"about {share:.0%} of the parameters (a smaller family such as squeezenet, or fewer "
                     "filters/units in trainer.hyperparameters) to fit the flash budget")
    return "; or ".join(hints)


def golden_json(measured: Measurement) -> str:
    """golden.json: the golden vectors, their outputs in TFLite Micro, and where each came from."""
    return json.dumps({"input_dtype": "int8", "output_dtype": "int8", "sources": measured.golden_sources,
                       "inputs": measured.golden_inputs.tolist(), "outputs": measured.golden_outputs.tolist()},
                      indent=1) + "\n"


def run_device_check(measured: Measurement, device: DeviceCheckSpec, pipeline_name: str) -> dict:
    """The int8 model and its golden vectors as a bundle in a scratch folder, built and run on the TFLite Micro
    C++ library for the spec's target (components/edge_pusher/device_check.py); its figures, or {"error": ...}."""
    ops = tflite_tools.op_names(measured.model_int8)
    with tempfile.TemporaryDirectory(prefix="imagepipe-device-check-") as scratch:
        folder = Path(scratch)
        for name, text in bundle.render_sources(pipeline_name, 0, measured.model_int8, ops).items():
            (folder / name).write_text(text)
        (folder / "model_int8.tflite").write_bytes(measured.model_int8)
        (folder / "golden.json").write_text(golden_json(measured))
        (folder / bundle.MANIFEST).write_text(json.dumps({"arena_bytes": measured.arena_bytes, "ops": ops}))
        try:
            return device_check.device_check(folder, Path(device.tflm_source), device.target,
                                             progress=lambda message: logging.info("imagepipe device check: %s", message))
        except device_check.DeviceCheckError as exc:
            return {"target": device.target, "error": str(exc)}


def decide(measured: Measurement, max_int8_degradation: float, flash_budget: int, ram_budget: int,
           device: Optional[dict] = None, flash_counts_runtime: bool = False) -> dict:
    """The edge report: every number, each check, and for each failed check the limit with both numbers.
    With a device check, the RAM budget counts the device's arena and other static RAM, the flash budget
    (with flash_counts_runtime) a minimal firmware, and the golden vectors must be bit-exact on the device."""
    metric = measured.metric
    lost = degradation(measured.task, measured.float_score, measured.int8_score)
    on_device = device is not None and "error" not in device
    target = device["target"] if device is not None else "host"
    if on_device:
        ram_used = device["ram_bytes"]
        ram_reason = (f"{target} RAM {ram_used:,} B (arena {device['arena_bytes']:,} + other static "
                      f"{device['ram_other_static_bytes']:,}) > RAM budget {ram_budget:,} B")
    else:
        ram_used = measured.arena_bytes
        ram_reason = f"tensor arena {ram_used:,} B > RAM budget {ram_budget:,} B"
    runtime_flash = device["flash_runtime_bytes"] if on_device and flash_counts_runtime else 0
    flash_used = len(measured.model_int8) + runtime_flash
    if runtime_flash:
        flash_reason = (f"{target} firmware {flash_used:,} B (model {len(measured.model_int8):,} + runtime "
                        f"{runtime_flash:,}) > flash budget {flash_budget:,} B")
    else:
        flash_reason = f"int8 model {flash_used:,} B > flash budget {flash_budget:,} B"
    checks = {
        "int8_within_tolerance": lost <= max_int8_degradation + 1e-9,  # 0.98 - 0.97 is 0.0100000000000000009
        "fits_flash": flash_used <= flash_budget,
        "fits_ram": ram_used <= ram_budget,
    }
    reasons = {
        "int8_within_tolerance": f"int8 {metric.replace('_', ' ')} {measured.int8_score:.4f} vs float "
                                 f"{measured.float_score:.4f}: {lost:.4f} worse > max_int8_degradation "
                                 f"{max_int8_degradation}",
        "fits_flash": flash_reason,
        "fits_ram": ram_reason,
    }
    if device is not None:
        checks["device_check"] = on_device and device["golden_bit_exact"]
        reasons["device_check"] = (f"device check on {target} failed: {device['error']}" if not on_device else
                                   f"golden vectors {device['golden_mismatches']} differ on the TFLite Micro library "
                                   f"({target})")
    report = {
        "metric": metric, f"float_{metric}": measured.float_score, f"int8_{metric}": measured.int8_score,
        "max_int8_degradation": max_int8_degradation,
        "float_model_bytes": len(measured.model_float), "int8_model_bytes": len(measured.model_int8),
        "flash_budget_bytes": flash_budget, "arena_bytes": measured.arena_bytes, "ram_budget_bytes": ram_budget,
        "eval_samples": measured.eval_samples, "checks": checks, "passed": all(checks.values()),
        "refused_because": [reasons[name] for name, ok in checks.items() if not ok],
    }
    if device is not None:
        report["device"] = device
    hint = what_would_fit(measured, flash_budget, ram_budget, ram_used, runtime_flash, target)
    if hint:
        report["what_would_fit"] = hint
    return report


class Executor(base_executor.BaseExecutor):
    """Measure, decide, publish: each a step of its own."""

    def Do(self, input_dict, output_dict, exec_properties):
        self._log_startup(input_dict, output_dict, exec_properties)
        pushed = artifact_utils.get_single_instance(output_dict["pushed_model"])
        blessing = artifact_utils.get_single_instance(input_dict["model_blessing"])
        if not blessing.get_int_custom_property("blessed"):
            logging.info("EdgePusher: the model is not blessed; nothing converted.")
            pushed.set_int_custom_property("pushed", 0)
            return
        model = artifact_utils.get_single_instance(input_dict["model"])
        export_dir = edge_export_dir(model.uri)
        edge_info = EdgeInfo.read(export_dir)
        to_inputs = tf.saved_model.load(os.path.join(export_dir, EDGE_EXPORT_INPUTS)).signatures["serving_default"]
        try:
            measured = measure(to_inputs, os.path.join(export_dir, EDGE_EXPORT_MODEL),
                               artifact_utils.get_single_instance(input_dict["examples"]), edge_info.task,
                               exec_properties["representative_samples"])
        except tflite_tools.NotMicroReady as exc:
            # The serving push stands; the edge push is refused with the reason.
            self._refuse(pushed, {"metric": SHORT_METRIC[edge_info.task], "error": str(exc),
                                  "checks": {"converts_to_full_integer": False}, "passed": False,
                                  "refused_because": [str(exc)]})
            return

        device_spec = (DeviceCheckSpec.model_validate_json(exec_properties["device_check"])
                       if exec_properties.get("device_check") else None)
        device = run_device_check(measured, device_spec, exec_properties["pipeline_name"]) if device_spec else None
        report = decide(measured, exec_properties["max_int8_degradation"], exec_properties["flash_budget_bytes"],
                        exec_properties["ram_budget_bytes"], device,
                        bool(device_spec and device_spec.flash_counts_runtime))
        for key in ("float_model_bytes", "int8_model_bytes", "arena_bytes"):
            pushed.set_int_custom_property(key, report[key])
        pushed.set_float_custom_property(f"float_{measured.metric}", measured.float_score)
        pushed.set_float_custom_property(f"int8_{measured.metric}", measured.int8_score)
        if not report["passed"]:
            self._refuse(pushed, report)
            return
        self._write_report(pushed, report)
        base = exec_properties["base_directory"]  # a path or an object-store URI
        version = self._publish(base, model, measured, edge_info, report, input_dict, exec_properties["pipeline_name"])
        pushed.set_int_custom_property("pushed", 1)
        pushed.set_int_custom_property("pushed_version", version)
        pushed.set_string_custom_property("pushed_destination", versioned_store.join(base, str(version)))

    def _publish(self, base: str, model, measured: Measurement, edge_info: EdgeInfo, report: dict, input_dict,
                 pipeline_name: str) -> int:
        """The bundle, once per model: a re-run finds its version (and repairs `latest`)."""
        version = bundle.find_version_of(base, model.id)
        if version is not None:
            logging.info("EdgePusher: model %d is already edge version %d.", model.id, version)
            bundle.repair_latest(base)  # a run stopped between the version folder and `latest`
            return version
        version = self._version(input_dict, base)
        metric = measured.metric
        manifest = {
            "pipeline": pipeline_name, "version": version,
            "source_model_artifact_id": model.id, "source_model_uri": model.uri,
            "task": measured.task, "labels": edge_info.labels,
            "input": dict(tensor_description(measured.input_detail), preprocessing=edge_info.input_preprocessing),
            "output": dict(tensor_description(measured.output_detail), meaning=edge_info.output_meaning),
            "ops": tflite_tools.op_names(measured.model_int8),
            **{k: report[k] for k in ("arena_bytes", f"float_{metric}", f"int8_{metric}", "eval_samples")},
            "arena_measured_with": "the tflite-micro Python wrapper's recording allocator on this host (an upper "
                                   "bound: its bookkeeping is in the arena)",
            # Per target, measured on the TFLite Micro C++ library (push.edge.device): the device's figures.
            **({"devices": {report["device"]["target"]: report["device"]}} if "device" in report else {}),
            "tensorflow_version": tf.__version__,
            "converter": f"tf.lite.TFLiteConverter (TensorFlow {tf.__version__})",
            "tflite_micro_version": importlib.metadata.version("tflite-micro"),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        files = {"model_float.tflite": measured.model_float, "model_int8.tflite": measured.model_int8,
                 "golden.json": golden_json(measured),
                 **bundle.render_sources(pipeline_name, version, measured.model_int8, manifest["ops"])}
        destination = bundle.write_bundle(base, version, files, manifest)
        logging.info("EdgePusher: pushed %s", destination)
        return version

    @staticmethod
    def _write_report(pushed, report: dict) -> None:
        # Orchestrators differ in whether they create output folders (Kubeflow does not); write_json does.
        write_json(os.path.join(pushed.uri, EDGE_REPORT_FILE), report)
        logging.info("EdgePusher: %s", json.dumps(report))

    def _refuse(self, pushed, report: dict) -> None:
        self._write_report(pushed, report)
        logging.warning("EdgePusher: not pushed: %s%s; see %s", "; ".join(report["refused_because"]),
                        f" (what would fit: {report['what_would_fit']})" if report.get("what_would_fit") else "",
                        os.path.join(pushed.uri, EDGE_REPORT_FILE))
        pushed.set_int_custom_property("pushed", 0)

    @staticmethod
    def _version(input_dict, base: str) -> int:
        """The serving push's version, so both stores name a model alike; else the next free number."""
        serving_pushes = input_dict.get("serving_push") or []
        if serving_pushes:
            serving_version = serving_pushes[0].get_string_custom_property("pushed_version")
            if serving_version:
                return int(serving_version)
        return bundle.store(base).next_version()
