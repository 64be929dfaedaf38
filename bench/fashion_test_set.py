"""Benchmark: a Fashion-MNIST pipeline's pushed model on the 10,000 held-out test images.

  python bench/fashion_test_set.py [spec] [--run]
  (default pipelines/fashion.yaml; --run first runs the pipeline with `imagepipe run`, else the
  newest pushed version in the spec's outputs is measured)

The pipelines train on `data/fashion-mnist` (the 60,000 train images, split into train and eval by
hash); the t10k images were never seen. Each is sent to the pushed model's `serving_default` as TF
Serving's REST API would receive it (PNG bytes), and, when the spec pushes to the edge, to the int8
model in TFLite Micro (the tflite-micro Python wrapper, reference kernels) after the pushed bundle's
own preprocessing (the Transform graph's image function, quantized with the manifest's scale).
Writes bench/results/fashion.json (one entry per spec, the newest measurement of each).
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from measure import write_result  # noqa: E402
from PIL import Image  # noqa: E402

from components.contracts import SERVING_PUSH_RECORD  # noqa: E402
from components.edge_pusher import tflite_tools  # noqa: E402
from components.image_transform import decode_image  # noqa: E402
from components.versioned_store import VersionedStore  # noqa: E402
from imagepipe.datasets import FASHION_CLASSES, fashion_mnist_arrays  # noqa: E402
from imagepipe.spec import load_spec  # noqa: E402

RESULTS = REPO / "bench" / "results" / "fashion.json"


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def newest(base: Path, record: str) -> Path:
    versions = VersionedStore(str(base), record_name=record).versions()
    if not versions:
        raise SystemExit(f"nothing pushed under {base}; run the pipeline first (or pass --run)")
    return base / str(versions[-1])


def served_accuracy(model_dir: Path, images: list, labels: np.ndarray) -> dict:
    serve = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    predicted = []
    for start in range(0, len(images), 500):
        predicted += list(serve(image_bytes=tf.constant(images[start:start + 500]))["label"].numpy().astype(str))
    truth = np.array([FASHION_CLASSES[int(label)] for label in labels])
    predicted = np.array(predicted)
    return {"test_accuracy": round(float(np.mean(predicted == truth)), 4),
            "per_class_recall": {name: round(float(np.mean(predicted[truth == name] == name)), 4) for name in FASHION_CLASSES}}


def int8_accuracy(bundle_dir: Path, images: list, labels: np.ndarray, image) -> float:
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    preprocess = tf.function(lambda data: decode_image(data, image.height, image.width, image.channels,
                                                       image.content_margin, image.dark_background))
    inputs = np.stack([preprocess(tf.constant(data)).numpy() for data in images])
    quantized = tflite_tools.quantize(inputs, manifest["input"]["scale"], manifest["input"]["zero_point"])
    outputs = tflite_tools.run_micro((bundle_dir / "model_int8.tflite").read_bytes(), quantized, manifest["arena_bytes"])
    # The manifest's labels are in the model's output order.
    predicted = np.array(manifest["labels"])[outputs.reshape(len(images), -1).argmax(axis=1)]
    truth = np.array([FASHION_CLASSES[int(label)] for label in labels])
    return round(float(np.mean(predicted == truth)), 4)


def main(spec_path: str = "pipelines/fashion.yaml", *flags: str) -> dict:
    loaded = load_spec(REPO / spec_path, check_paths=False)
    run = None
    if "--run" in flags:
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "imagepipe.cli", "run", spec_path, "--json"], cwd=REPO,
                                capture_output=True, text=True)
        run = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else {"error": result.stderr[-2000:]}
        run["wall_seconds"] = round(time.perf_counter() - started, 1)
    history = subprocess.run([sys.executable, "-m", "imagepipe.cli", "runs", spec_path, "--json"], cwd=REPO,
                             capture_output=True, text=True).stdout.strip().splitlines()
    latest = json.loads(history[-1]) if history else {}
    pixels, labels = fashion_mnist_arrays("test")
    images = [png(p) for p in pixels]
    entry = {"spec": spec_path, "test_images": len(labels), "eval_accuracy": latest.get("accuracy"),
             "kept_epoch": latest.get("kept_epoch"), "epochs_run": latest.get("epochs_run"),
             "status": latest.get("status"), "run": run, "date": time.strftime("%Y-%m-%d")}
    if not VersionedStore(loaded.layout.serving_base_dir, record_name=SERVING_PUSH_RECORD).versions():
        # Not blessed (below the spec's gate): nothing was pushed to measure; the run's outcome is the record.
        entry["served_version"] = None
        print(json.dumps(entry, indent=1))
        previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        write_result("fashion", {"benchmark": "fashion", "measured": {**previous.get("measured", {}), loaded.name: entry}})
        return entry
    model_dir = newest(Path(loaded.layout.serving_base_dir), SERVING_PUSH_RECORD)
    entry.update(served_version=int(model_dir.name), **served_accuracy(model_dir, images, labels))
    if loaded.spec.push.edge:
        bundle_dir = newest(Path(loaded.layout.edge_base_dir), "manifest.json")
        entry["int8_test_accuracy"] = int8_accuracy(bundle_dir, images, labels, loaded.spec.image)
        entry["int8_model_bytes"] = (bundle_dir / "model_int8.tflite").stat().st_size
    print(json.dumps({k: v for k, v in entry.items() if k != "per_class_recall"}, indent=1))
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    measured = {**previous.get("measured", {}), loaded.name: entry}
    write_result("fashion", {"benchmark": "fashion", "measured": measured})
    return entry


if __name__ == "__main__":
    main(*sys.argv[1:])
