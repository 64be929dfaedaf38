"""Benchmark: MixMatch vs. supervised-only on Fashion-MNIST at 250 labels, measured on the 10,000 test images.

  python bench/mixmatch_fashion.py [steps] [seed] [eval_every] [method ...]
  (default 3,000 steps, seed 0, a curve point every 500 steps, both methods)

The data are pipelines/fashion-mixmatch.yaml's: `data/fashion-mnist` (`imagepipe data fashion-mnist`) split by the
spec's hash rule; the train split keeps 25 labels per class (ImageExampleGen's seeded choice, as in
bench/mixmatch.py) and the rest of it is the unlabelled set. The test set is the 10,000 `t10k` images, read from
the idx files and put through the Transform graph's own image function. Both methods train the spec's backbone
with the same optimizer (AdamW, weight decay, moving average), batch size and number of steps; the supervised
run sees the same labelled batches with the same augmentation and nothing else. Every `eval_every` steps the
moving average of the weights (the model the pipeline would push) is scored on the test set, so the curve
shows whether more steps would help.

Each invocation adds its runs to bench/results/mixmatch.json under "fashion-mnist" (seeds may be run in
different sessions; every run is kept with its commit and date) and recomputes the medians.
Target (issue 21): MixMatch's median test accuracy >= supervised's + 10 points, within 30 minutes a run.
"""
from __future__ import annotations

import io
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
SPEC = REPO / "pipelines" / "fashion-mixmatch.yaml"
RESULTS = REPO / "bench" / "results" / "mixmatch.json"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from measure import write_result  # noqa: E402
from mixmatch import load_split, train  # noqa: E402 (bench/mixmatch.py: the digits comparison)
from PIL import Image  # noqa: E402

from components.image_transform import decode_image  # noqa: E402
from imagepipe.datasets import FASHION_CLASSES, fashion_mnist_arrays  # noqa: E402
from imagepipe.spec import load_spec  # noqa: E402
from trainer_modules import mixmatch  # noqa: E402


def test_set(image) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 test images as PNG bytes through the pipeline's image function, and their labels as the
    pipeline numbers them: the index of the class folder's name in sorted order (not the idx file's index)."""
    pixels, idx_labels = fashion_mnist_arrays("test")
    sorted_names = sorted(FASHION_CLASSES)
    labels = np.array([sorted_names.index(FASHION_CLASSES[int(label)]) for label in idx_labels])
    preprocess = tf.function(lambda data: decode_image(data, image.height, image.width, image.channels,
                                                       image.content_margin, image.dark_background))

    def png(array):
        buffer = io.BytesIO()
        Image.fromarray(array, mode="L").save(buffer, format="PNG")
        return buffer.getvalue()

    return np.stack([preprocess(tf.constant(png(p))).numpy() for p in pixels]), labels.astype(np.int64)


class Curve(keras.callbacks.Callback):
    """Scores the optimizer's moving average of the weights every `every` steps, without disturbing training."""

    def __init__(self, images, labels, every: int):
        super().__init__()
        self.images, self.labels, self.every = images, labels, every
        self.points: list[list[float]] = []

    def on_train_begin(self, logs=None):
        self.backbone = self.model.backbone  # MixMatch and Supervised both wrap the backbone that is scored

    def accuracy(self) -> float:
        return float((self.backbone.predict(self.images, batch_size=500, verbose=0).argmax(axis=1) == self.labels).mean())

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every:
            return
        variables = self.backbone.trainable_variables
        current = [v.numpy() for v in variables]
        self.model.optimizer.finalize_variable_values(variables)  # the moving average, as fit's end does
        self.points.append([step, round(self.accuracy(), 4)])
        for variable, value in zip(variables, current):
            variable.assign(value)
        print(f"  step {step}: test accuracy {self.points[-1][1]:.4f}", flush=True)


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()


def main(steps: str = "3000", seed: str = "0", eval_every: str = "500", *methods: str) -> dict:
    steps, seed, eval_every = int(steps), int(seed), int(eval_every)
    loaded = load_spec(SPEC)
    spec = loaded.spec
    hp = mixmatch.Hyperparameters.model_validate(spec.trainer.hyperparameters)
    import importlib

    family = importlib.import_module(f"trainer_modules.{hp.backbone}")
    backbone_hp = family.Hyperparameters.model_validate(hp.backbone_hyperparameters)
    started = time.perf_counter()
    (train_x, train_y, _, _), num_classes = load_split(loaded, spec.data.labels_per_class)
    test_x, test_y = test_set(spec.image)
    labelled = train_y >= 0
    print(f"{int(labelled.sum())} labels, {int((~labelled).sum())} unlabelled, {len(test_y)} test images "
          f"(loaded in {time.perf_counter() - started:.0f} s)", flush=True)

    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"benchmark": "mixmatch"}
    fashion = previous.get("fashion-mnist") or {"labels": int(labelled.sum()), "supervised": {"runs": []},
                                                "mixmatch": {"runs": []}}
    for method in methods or ("supervised", "mixmatch"):
        curve = Curve(test_x, test_y, eval_every)
        print(f"{method}: {steps} steps, seed {spec.trainer.seed + seed}", flush=True)
        backbone, seconds = train(hp, family, backbone_hp, train_x[labelled], train_y[labelled], train_x[~labelled],
                                  num_classes, steps, spec.trainer.batch_size, spec.trainer.learning_rate,
                                  spec.trainer.seed + seed, semi=method == "mixmatch", callbacks=[curve])
        accuracy = float((backbone.predict(test_x, batch_size=500, verbose=0).argmax(axis=1) == test_y).mean())
        run = {"seed": spec.trainer.seed + seed, "steps": steps, "batch_size": spec.trainer.batch_size,
               "backbone": hp.backbone, "test_accuracy": round(accuracy, 4), "train_seconds": round(seconds, 1),
               "curve": curve.points, "commit": commit(), "date": time.strftime("%Y-%m-%d")}
        fashion[method]["runs"].append(run)
        print(f"{method}: test accuracy {accuracy:.4f} in {seconds:.0f} s", flush=True)

    for method in ("supervised", "mixmatch"):
        accuracies = [r["test_accuracy"] for r in fashion[method]["runs"] if r["steps"] == steps]
        fashion[method]["median_test_accuracy"] = statistics.median(accuracies) if accuracies else None
    seeds = {m: len([r for r in fashion[m]["runs"] if r["steps"] == steps]) for m in ("supervised", "mixmatch")}
    fashion.update(seeds=min(seeds.values()), steps=steps)
    medians = [fashion[m]["median_test_accuracy"] for m in ("supervised", "mixmatch")]
    fashion["gain_points"] = round(100 * (medians[1] - medians[0]), 1) if None not in medians else None
    fashion["target_met"] = bool(fashion["gain_points"] is not None and fashion["gain_points"] >= 10 and
                                 fashion["seeds"] >= 3)
    # The file's provenance is that of the digits comparison (bench/mixmatch.py); these runs carry their own.
    path = write_result("mixmatch", {**{k: v for k, v in previous.items() if k != "provenance"}, "fashion-mnist": fashion})
    written = json.loads(path.read_text())
    fashion["provenance"] = written.pop("provenance")
    if "provenance" in previous:
        path.write_text(json.dumps({**written, "fashion-mnist": fashion, "provenance": previous["provenance"]}, indent=2) + "\n")
    print(json.dumps({k: fashion[k] for k in ("labels", "seeds", "steps", "gain_points", "target_met")}))
    return fashion


if __name__ == "__main__":
    main(*sys.argv[1:])
