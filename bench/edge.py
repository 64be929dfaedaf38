"""Benchmark: the sine hello world's edge bundle against the TinyML book.

Runs pipelines/sine.yaml in a scratch folder, then measures the pushed int8
model in TFLite Micro on the held-out test split (20%, never seen by
training, evaluation or calibration): mean absolute error against sin(x) and
MSE against the noisy labels, as the book reports (int8 2,488 bytes, test MSE
0.0108; float 0.0102). The digits pipeline's edge numbers (int8 vs float size
and accuracy, arena) come from its run in bench/families.py.

Writes bench/results/edge.json.
"""
from __future__ import annotations

import glob
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from components.edge_pusher import tflite_tools  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from measure import write_result  # noqa: E402

BOOK = {"int8_model_bytes": 2488, "int8_test_mse": 0.0108, "float_test_mse": 0.0102}


def test_split(examples_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(glob.glob(str(examples_dir / "Split-test" / "*")))
    xs, ys = [], []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        example = tf.train.Example.FromString(record.numpy())
        xs.append(example.features.feature["x"].float_list.value[0])
        ys.append(example.features.feature["y"].float_list.value[0])
    return np.array(xs, np.float32), np.array(ys, np.float32)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="imagepipe-edge-"))
    try:
        spec = yaml.safe_load((REPO / "pipelines" / "sine.yaml").read_text())
        spec["data"]["root"] = str(work / "data" / "sine")
        spec["output_dir"] = str(work / "outputs")
        path = work / "sine.yaml"
        path.write_text(yaml.safe_dump(spec))
        result = subprocess.run([sys.executable, "-m", "imagepipe.cli", "run", str(path), "--json"],
                                cwd=REPO, capture_output=True, text=True)
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        if result.returncode != 0:
            raise SystemExit(f"sine pipeline did not push (exit {result.returncode}): {result.stderr[-2000:]}")
        bundle = Path(summary["edge"]["destination"])
        manifest = json.loads((bundle / "manifest.json").read_text())
        examples = sorted((work / "outputs" / "sine" / "tfx" / "CsvExampleGen" / "examples").glob("*"))[-1]
        x, y = test_split(examples)

        model_int8 = (bundle / "model_int8.tflite").read_bytes()
        quantized = tflite_tools.quantize(x[:, None], manifest["input"]["scale"], manifest["input"]["zero_point"])
        int8_y = tflite_tools.dequantize(tflite_tools.run_micro(model_int8, quantized, manifest["arena_bytes"]),
                                         manifest["output"]["scale"], manifest["output"]["zero_point"])[:, 0]
        float_y = tflite_tools.run_tflite((bundle / "model_float.tflite").read_bytes(), x[:, None])[:, 0]
        results = {
            "test_samples": int(len(x)),
            "int8_model_bytes": len(model_int8),
            "float_model_bytes": manifest["files"]["model_float.tflite"]["bytes"],
            "arena_bytes": manifest["arena_bytes"],
            "int8_test_mse": float(np.mean((int8_y - y) ** 2)),
            "float_test_mse": float(np.mean((float_y - y) ** 2)),
            "int8_mae_vs_sin_x": float(np.mean(np.abs(int8_y - np.sin(x)))),
            "float_mae_vs_sin_x": float(np.mean(np.abs(float_y - np.sin(x)))),
            "measured_in": "TFLite Micro (int8), TFLite interpreter (float)",
            "book": BOOK,
            "targets": {"int8_model_bytes_at_most": BOOK["int8_model_bytes"], "int8_mae_vs_sin_x_at_most": 0.05},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["targets_met"] = (results["int8_model_bytes"] <= BOOK["int8_model_bytes"]
                              and results["int8_mae_vs_sin_x"] <= 0.05)
    write_result("edge", results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
