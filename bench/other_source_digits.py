"""Benchmark: the pushed digits model on handwritten digits from another source.

scikit-learn's `load_digits` holds 1,797 digits written by 43 people (UCI
optdigits), 8x8 pixels with 17 grey levels: other writers, another scanner,
another resolution than MNIST. Each is sent to the latest pushed model's
`serving_default` signature as TF Serving's REST API would receive it (base64
PNG), as light-on-dark (like MNIST) and as dark ink on white paper, and as the
raw 8x8 image and enlarged to 64x64.

Writes bench/results/other_source_digits.json.
"""
from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image
from sklearn.datasets import load_digits

from components.serving_pusher import store
from imagepipe.spec import load_spec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import write_result  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def png_b64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def main(spec_path: str = "pipelines/digits.yaml", model_dir: str | None = None) -> None:
    """`model_dir`: a SavedModel to measure instead of the newest pushed version (e.g. a candidate
    that was not blessed: outputs/digits/tfx/Trainer/model/<id>/Format-Serving); results are then only printed."""
    candidate = model_dir is not None
    if model_dir is None:
        loaded = load_spec(REPO / spec_path, check_paths=False)
        base = Path(loaded.layout.serving_base_dir)
        versions = store(str(base)).versions()
        if not versions:
            raise SystemExit(f"no pushed model under {base}; run `make run` first")
        model_dir = str(base / str(versions[-1]))
    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    digits = load_digits()
    light_on_dark = (digits.images / 16.0 * 255).astype(np.uint8)
    variants = {
        "8x8 light on dark": light_on_dark,
        "8x8 dark on white": 255 - light_on_dark,
        "64x64 dark on white": np.stack([np.array(Image.fromarray(255 - d).resize((64, 64), Image.BICUBIC)) for d in light_on_dark]),
    }
    results = {}
    for name, images in variants.items():
        request = {"instances": [{"b64": png_b64(image)} for image in images]}
        image_bytes = tf.constant([base64.b64decode(i["b64"]) for i in request["instances"]])
        labels = serve(image_bytes=image_bytes)["label"].numpy().astype(str)
        truth = digits.target.astype(str)
        per_class = {str(d): round(float(np.mean(labels[truth == str(d)] == str(d))), 4) for d in range(10)}
        results[name] = {"accuracy": round(float(np.mean(labels == truth)), 4), "per_class_recall": per_class}
        print(f"{name}: accuracy {results[name]['accuracy']:.4f}")
    out = {
        "benchmark": "other_source_digits",
        "model": model_dir,
        "data": "sklearn.datasets.load_digits: 1,797 digits by 43 writers (UCI optdigits), not in training",
        "target_accuracy": 0.93,
        "results": results,
    }
    if candidate:
        return
    write_result("other_source_digits", out)


if __name__ == "__main__":
    main(*sys.argv[1:])
