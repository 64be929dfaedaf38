"""EdgePusher executor: convert, measure, gate, write the bundle.

1. Load the Trainer's edge export (Format-Edge/: a batch-1 SavedModel of the
   bare model, and a SavedModel that turns tf.Examples into its inputs).
2. Convert to float32 and full-integer int8 TFLite; the int8 calibration data
   are drawn from the train split.
3. Measure on the eval split: the float model in the TFLite interpreter, the
   int8 model in the TFLite Micro interpreter, with the smallest arena it runs
   in. Accuracy for classifiers, mean absolute error for regressors.
4. Push only if int8 is within tolerance of float and fits the device budget;
   the numbers are reported (edge_report.json, artifact properties) either way.
"""
from __future__ import annotations

import glob
import importlib.metadata
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np
import tensorflow as tf
from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.contracts import (
    CLASSIFICATION,
    EDGE_EXPORT_INPUTS,
    EDGE_EXPORT_MODEL,
    EDGE_REPORT_FILE,
    SHORT_METRIC,
    EdgeInfo,
    edge_export_dir,
)
from components.edge_pusher import bundle, tflite_tools
from components.versions import existing_versions

GOLDEN_SAMPLES = 5


def read_split(examples, split: str) -> tf.data.Dataset:
    files = sorted(glob.glob(os.path.join(artifact_utils.get_split_uri([examples], split), "*")))
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


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties):
        self._log_startup(input_dict, output_dict, exec_properties)
        pushed = artifact_utils.get_single_instance(output_dict["pushed_model"])
        blessing = artifact_utils.get_single_instance(input_dict["model_blessing"])
        if not blessing.get_int_custom_property("blessed"):
            logging.info("EdgePusher: the model is not blessed; nothing converted.")
            pushed.set_int_custom_property("pushed", 0)
            return
        model = artifact_utils.get_single_instance(input_dict["model"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        export_dir = edge_export_dir(model.uri)
        edge_info = EdgeInfo.read(export_dir)
        task = edge_info.task
        to_inputs = tf.saved_model.load(os.path.join(export_dir, EDGE_EXPORT_INPUTS)).signatures["serving_default"]
        saved_model_dir = os.path.join(export_dir, EDGE_EXPORT_MODEL)

        # Calibration samples: a seeded shuffle of the train split, so every class is represented.
        calibration, _ = model_inputs(
            to_inputs, read_split(examples, "train").shuffle(10000, seed=0).take(exec_properties["representative_samples"]))
        eval_inputs, eval_labels = model_inputs(to_inputs, read_split(examples, "eval"))
        logging.info("EdgePusher: converting (%d calibration samples, %d eval samples)", len(calibration), len(eval_inputs))
        metric = SHORT_METRIC[task]
        try:
            model_float, model_int8 = tflite_tools.convert_for_micro(saved_model_dir, calibration)
        except tflite_tools.NotMicroReady as exc:
            # The serving push stands; the edge push is refused with the reason.
            self._refuse(pushed, {"metric": metric, "error": str(exc), "checks": {"converts_to_full_integer": False},
                                  "passed": False})
            return

        input_detail, output_detail = tflite_tools.io_details(model_int8)
        in_scale, in_zero = input_detail["quantization"]
        out_scale, out_zero = output_detail["quantization"]
        quantized_eval = tflite_tools.quantize(eval_inputs, in_scale, in_zero)
        arena_bytes = tflite_tools.measure_arena_bytes(model_int8, quantized_eval[0])
        # The float model is the yardstick for int8; the int8 model runs in TFLite Micro, the device's code.
        float_score = score(task, tflite_tools.run_tflite(model_float, eval_inputs, reference_kernels=False), eval_labels)
        micro_outputs = tflite_tools.run_micro(model_int8, quantized_eval, arena_bytes)
        int8_score = score(task, tflite_tools.dequantize(micro_outputs, out_scale, out_zero), eval_labels)

        checks = {
            "int8_within_tolerance": degradation(task, float_score, int8_score) <= exec_properties["max_int8_degradation"],
            "fits_flash": len(model_int8) <= exec_properties["flash_budget_bytes"],
            "fits_ram": arena_bytes <= exec_properties["ram_budget_bytes"],
        }
        report = {
            "metric": metric, f"float_{metric}": float_score, f"int8_{metric}": int8_score,
            "max_int8_degradation": exec_properties["max_int8_degradation"],
            "float_model_bytes": len(model_float), "int8_model_bytes": len(model_int8),
            "flash_budget_bytes": exec_properties["flash_budget_bytes"],
            "arena_bytes": arena_bytes, "ram_budget_bytes": exec_properties["ram_budget_bytes"],
            "eval_samples": int(len(eval_inputs)), "checks": checks, "passed": all(checks.values()),
        }
        for key in ("float_model_bytes", "int8_model_bytes", "arena_bytes"):
            pushed.set_int_custom_property(key, report[key])
        pushed.set_float_custom_property(f"float_{metric}", float_score)
        pushed.set_float_custom_property(f"int8_{metric}", int8_score)
        if not report["passed"]:
            self._refuse(pushed, report)
            return
        self._write_report(pushed, report)

        base = Path(exec_properties["base_directory"])
        version = bundle.find_version_of(base, model.id)
        if version is not None:
            logging.info("EdgePusher: model %d is already edge version %d.", model.id, version)
            bundle.repair_latest(base)  # a run stopped between the version folder and `latest`
        else:
            version = self._version(input_dict, base)
            golden_inputs = quantized_eval[:GOLDEN_SAMPLES]
            golden = {"input_dtype": "int8", "output_dtype": "int8",
                      "inputs": golden_inputs.tolist(),
                      "outputs": micro_outputs[:GOLDEN_SAMPLES].tolist()}
            manifest = {
                "pipeline": exec_properties["pipeline_name"], "version": version,
                "source_model_artifact_id": model.id, "source_model_uri": model.uri,
                "task": task, "labels": edge_info.labels,
                "input": dict(tensor_description(input_detail), preprocessing=edge_info.input_preprocessing),
                "output": dict(tensor_description(output_detail), meaning=edge_info.output_meaning),
                "ops": tflite_tools.op_names(model_int8),
                **{k: report[k] for k in ("arena_bytes", f"float_{metric}", f"int8_{metric}", "eval_samples")},
                "tensorflow_version": tf.__version__,
                "converter": f"tf.lite.TFLiteConverter (TensorFlow {tf.__version__})",
                "tflite_micro_version": importlib.metadata.version("tflite-micro"),
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            files = {"model_float.tflite": model_float, "model_int8.tflite": model_int8,
                     "golden.json": json.dumps(golden, indent=1) + "\n",
                     **bundle.render_sources(exec_properties["pipeline_name"], version, model_int8, manifest["ops"])}
            destination = bundle.write_bundle(base, version, files, manifest)
            logging.info("EdgePusher: pushed %s", destination)
        pushed.set_int_custom_property("pushed", 1)
        pushed.set_int_custom_property("pushed_version", version)
        pushed.set_string_custom_property("pushed_destination", str(base / str(version)))

    @staticmethod
    def _write_report(pushed, report: dict) -> None:
        # Orchestrators differ in whether they create output folders (Kubeflow does not).
        os.makedirs(pushed.uri, exist_ok=True)
        with open(os.path.join(pushed.uri, EDGE_REPORT_FILE), "w") as f:
            json.dump(report, f, indent=2)
        logging.info("EdgePusher: %s", json.dumps(report))

    def _refuse(self, pushed, report: dict) -> None:
        self._write_report(pushed, report)
        failed = ", ".join(name for name, ok in report["checks"].items() if not ok)
        logging.warning("EdgePusher: not pushed (%s); see %s", failed, os.path.join(pushed.uri, EDGE_REPORT_FILE))
        pushed.set_int_custom_property("pushed", 0)

    @staticmethod
    def _version(input_dict, base: Path) -> int:
        """The serving push's version, so both stores name a model alike; else the next free number."""
        serving_pushes = input_dict.get("serving_push") or []
        if serving_pushes:
            serving_version = serving_pushes[0].get_string_custom_property("pushed_version")
            if serving_version:
                return int(serving_version)
        versions = existing_versions(str(base))
        return versions[-1] + 1 if versions else 1
