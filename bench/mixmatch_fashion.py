"""Benchmark: MixMatch vs. supervised-only on Fashion-MNIST at 250 labels, measured on the 10,000 test images.

  python bench/mixmatch_fashion.py [steps] [seed] [eval_every] [method ...] [--variant NAME[,NAME...]]
  (default 3,000 steps, seed 0, a curve point every 500 steps, both methods, the spec's hyperparameters)

A variant (VARIANTS below) changes the spec's MixMatch hyperparameters for both methods, one lever at a time,
so that each lever of the paper's recipe is measured on its own: runs are kept per variant, and
"levers" compares every (variant, steps) measured. The top-level comparison is the spec's (variant "spec",
pipelines/fashion-mixmatch.yaml as it stands) at the invocation's number of steps.
Variants that change only the unlabelled loss (MIXMATCH_ONLY) run MixMatch alone and are compared with the
spec's supervised-only runs of the same seeds and steps.

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
from measure import short_commit, write_result  # noqa: E402
from mixmatch import load_split, train  # noqa: E402 (bench/mixmatch.py: the digits comparison)
from PIL import Image  # noqa: E402

from components.image_transform import decode_image  # noqa: E402
from imagepipe.datasets import FASHION_CLASSES, fashion_mnist_arrays  # noqa: E402
from imagepipe.spec import load_spec  # noqa: E402
from trainer_modules import mixmatch  # noqa: E402


# Levers, each a change of pipelines/fashion-mixmatch.yaml's trainer.hyperparameters (backbone ones nested).
# Every run also records the hyperparameters it trained with.
VARIANTS = {
    # Batch norm in every conv unit and no dropout in the head (label guesses are made in training mode, as
    # in the paper's code; dropout would make them noisy). One forward pass over the whole mixed batch puts
    # labelled and unlabelled images into the same batch-norm statistics: what the paper's interleaving does.
    "spec": {},
    # The spec before batch norm: no batch norm, dropout 0.4 in the head.
    "no-batch-norm": {"backbone_hyperparameters": {"batch_norm": False, "dropout": 0.4}},
    # The head of the paper's Wide ResNet: global average pooling straight into the softmax.
    "global-average-head": {"backbone_hyperparameters": {"head": "global_average", "dense_units": 0}},
    # The unlabelled loss's weight: the spec's 75 is the paper's for CIFAR-10; a third of it lets the 250 labels
    # outweigh wrong guesses (MixMatch-only: supervised-only training has no unlabelled loss).
    "lambda-u-25": {"lambda_u": 25},
    # The ramp over 2,000 steps, a whole run of 2,000 (the paper ramps over 16,000 of about a million steps).
    "rampup-2000": {"rampup_steps": 2000},
    # A tenth of the paper's weight.
    "lambda-u-10": {"lambda_u": 10},
    # No sharpening (T = 1): a guess keeps the model's own doubt instead of becoming a confident target.
    "temperature-1": {"temperature": 1.0},
}
# Variants that change only MixMatch's unlabelled loss: supervised-only training is the spec's, so their
# MixMatch runs are compared with the spec's supervised runs (same seeds and steps), not run again.
MIXMATCH_ONLY = {"lambda-u-25", "rampup-2000", "lambda-u-10", "temperature-1"}


def variant_hyperparameters(spec_hp: dict, variant: str) -> dict:
    change = VARIANTS[variant]
    backbone = {**spec_hp.get("backbone_hyperparameters", {}), **change.get("backbone_hyperparameters", {})}
    return {**spec_hp, **{k: v for k, v in change.items() if k != "backbone_hyperparameters"},
            "backbone_hyperparameters": backbone}


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
    """Scores the moving average of the weights (the model the pipeline would push) every `every` steps,
    without disturbing training; and measures the label guesses MixMatch trains the unlabelled images
    towards, on a fixed sample of them whose labels were dropped (`guessed`: true labels of that sample).

    A guess here is the training model's prediction on the image itself, sharpened with the spec's T, in
    inference mode and without augmentation (the step averages K augmentations in training mode): no random
    op and no batch-norm update, so measuring it changes nothing in training. Recorded per point: how many
    guesses are right, and how many are wrong yet sharpened past 0.9 (targets that teach a wrong class
    with confidence)."""

    CONFIDENT = 0.9

    def __init__(self, images, labels, every: int, average: mixmatch.WeightAverage,
                 guessed: tuple[np.ndarray, np.ndarray], temperature: float):
        super().__init__()
        self.images, self.labels, self.every, self.average = images, labels, every, average
        self.guessed_images, self.guessed_labels = guessed
        self.temperature = temperature
        self.points: list[list[float]] = []
        self.guesses: list[dict] = []

    def measure_guesses(self, step: int) -> None:
        backbone = self.average.averaged  # the weights being trained, not their average
        probabilities = backbone.predict(self.guessed_images, batch_size=500, verbose=0)
        sharpened = mixmatch.sharpen(tf.constant(probabilities), self.temperature).numpy()
        right = sharpened.argmax(axis=1) == self.guessed_labels
        confident = sharpened.max(axis=1) >= self.CONFIDENT
        self.guesses.append({"step": step, "right": round(float(right.mean()), 4),
                             "wrong_confident": round(float((~right & confident).mean()), 4),
                             "right_confident": round(float((right & confident).mean()), 4)})

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every:
            return
        with self.average.swapped_in() as backbone:
            predicted = backbone.predict(self.images, batch_size=500, verbose=0).argmax(axis=1)
        self.points.append([step, round(float((predicted == self.labels).mean()), 4)])
        self.measure_guesses(step)
        print(f"  step {step}: test accuracy {self.points[-1][1]:.4f}; guesses {self.guesses[-1]}", flush=True)


def summary(runs: list[dict]) -> dict:
    accuracies = [r["test_accuracy"] for r in runs]
    return {"median_test_accuracy": statistics.median(accuracies) if accuracies else None, "seeds": len(runs)}


def recompute(fashion: dict, variant: str, steps: int, spec_hp: dict) -> None:
    """The headline comparison (`variant` at `steps`) and the levers table, from the runs kept."""
    def measured(method: str, of_variant: str, of_steps: int) -> list[dict]:
        if method == "supervised" and of_variant in MIXMATCH_ONLY:  # the spec's, on the same seeds
            seeds = {r["seed"] for r in measured("mixmatch", of_variant, of_steps)}
            return [r for r in measured("supervised", "spec", of_steps) if r["seed"] in seeds]
        return [r for r in fashion[method]["runs"] if r["steps"] == of_steps and r["variant"] == of_variant]

    for method in ("supervised", "mixmatch"):
        fashion[method]["median_test_accuracy"] = summary(measured(method, variant, steps))["median_test_accuracy"]
    seeds = {m: len(measured(m, variant, steps)) for m in ("supervised", "mixmatch")}
    fashion.update(seeds=min(seeds.values()), steps=steps, variant=variant,
                   variant_hyperparameters=variant_hyperparameters(spec_hp, variant))
    medians = [fashion[m]["median_test_accuracy"] for m in ("supervised", "mixmatch")]
    fashion["gain_points"] = round(100 * (medians[1] - medians[0]), 1) if None not in medians else None
    fashion["target_met"] = bool(fashion["gain_points"] is not None and fashion["gain_points"] >= 10 and
                                 fashion["seeds"] >= 3)
    levers = []
    for lever, lever_steps in sorted({(r["variant"], r["steps"])
                                      for m in ("supervised", "mixmatch") for r in fashion[m]["runs"]}):
        change = VARIANTS.get(lever, "the spec of commit 4c07d76 (no batch norm, dropout 0.4), averaged by Keras' "
                                     "optimizer EMA (trainable weights only, decay 0.999 from the first step)")
        row = {"variant": lever, "steps": lever_steps, "change": change,
               **{m: summary(measured(m, lever, lever_steps)) for m in ("supervised", "mixmatch")}}
        both = [row[m]["median_test_accuracy"] for m in ("supervised", "mixmatch")]
        row["gain_points"] = round(100 * (both[1] - both[0]), 1) if None not in both else None
        levers.append(row)
    fashion["levers"] = levers


# Runs from before the WeightAverage (commit 4c07d76 and earlier) averaged with Keras' optimizer EMA:
# trainable weights only, decay 0.999 from the first step. They are kept, under this name.
KERAS_EMA = "spec-keras-ema"


def main(steps: str = "3000", seed: str = "0", eval_every: str = "500", *methods: str,
         variants: tuple[str, ...] = ("spec",)) -> dict:
    """Every method for every variant, the data loaded once; the spec's runs at `steps` are the headline."""
    steps, seed, eval_every = int(steps), int(seed), int(eval_every)
    loaded = load_spec(SPEC)
    spec = loaded.spec
    import importlib

    started = time.perf_counter()
    (train_x, train_y, _, _, true_train_y), num_classes = load_split(loaded, spec.data.labels_per_class,
                                                                     keep_dropped_labels=True)
    test_x, test_y = test_set(spec.image)
    labelled = train_y >= 0
    # The same 2,000 unlabelled images for every run: their guesses are measured along the curve.
    sample = np.random.default_rng(0).choice(np.flatnonzero(~labelled), size=2000, replace=False)
    guessed = (train_x[sample], true_train_y[sample])
    print(f"{int(labelled.sum())} labels, {int((~labelled).sum())} unlabelled, {len(test_y)} test images "
          f"(loaded in {time.perf_counter() - started:.0f} s)", flush=True)

    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"benchmark": "mixmatch"}
    fashion = previous.get("fashion-mnist") or {"labels": int(labelled.sum()), "supervised": {"runs": []},
                                                "mixmatch": {"runs": []}}
    for method in ("supervised", "mixmatch"):
        for old_run in fashion[method]["runs"]:
            old_run.setdefault("variant", KERAS_EMA)
    for variant_now, method in [(v, m) for v in variants for m in methods or ("supervised", "mixmatch")
                                if not (m == "supervised" and v in MIXMATCH_ONLY)]:
        hp = mixmatch.Hyperparameters.model_validate(variant_hyperparameters(spec.trainer.hyperparameters, variant_now))
        family = importlib.import_module(f"trainer_modules.{hp.backbone}")
        backbone_hp = family.Hyperparameters.model_validate(hp.backbone_hyperparameters)
        curves: list[Curve] = []

        def curve_callback(average):
            curves.append(Curve(test_x, test_y, eval_every, average, guessed, hp.temperature))
            return [curves[-1]]
        print(f"{method}: {steps} steps, seed {spec.trainer.seed + seed}, variant {variant_now}", flush=True)
        backbone, seconds = train(hp, family, backbone_hp, train_x[labelled], train_y[labelled], train_x[~labelled],
                                  num_classes, steps, spec.trainer.batch_size, spec.trainer.learning_rate,
                                  spec.trainer.seed + seed, semi=method == "mixmatch", callbacks=curve_callback)
        accuracy = float((backbone.predict(test_x, batch_size=500, verbose=0).argmax(axis=1) == test_y).mean())
        run = {"variant": variant_now, "hyperparameters": hp.model_dump(), "seed": spec.trainer.seed + seed, "steps": steps, "batch_size": spec.trainer.batch_size,
               "backbone": hp.backbone, "test_accuracy": round(accuracy, 4), "train_seconds": round(seconds, 1),
               "curve": curves[0].points, "guesses": curves[0].guesses, "commit": short_commit(), "date": time.strftime("%Y-%m-%d")}
        fashion[method]["runs"].append(run)
        print(f"{method}: test accuracy {accuracy:.4f} in {seconds:.0f} s", flush=True)
        save(previous, fashion, steps, spec.trainer.hyperparameters)  # after every run: a stopped bench loses none

    print(json.dumps({k: fashion[k] for k in ("labels", "seeds", "steps", "gain_points", "target_met")}))
    return fashion


def save(previous: dict, fashion: dict, steps: int, spec_hp: dict) -> None:
    """mixmatch.json with `fashion` recomputed. The file's provenance is that of the digits comparison
    (bench/mixmatch.py); the fashion-mnist key carries its own, and every run its commit."""
    recompute(fashion, "spec", steps, spec_hp)
    path = write_result("mixmatch", {**{k: v for k, v in previous.items() if k != "provenance"}, "fashion-mnist": fashion})
    written = json.loads(path.read_text())
    fashion["provenance"] = written.pop("provenance")
    if "provenance" in previous:
        path.write_text(json.dumps({**written, "fashion-mnist": fashion, "provenance": previous["provenance"]}, indent=2) + "\n")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    chosen = ["spec"]
    if "--variant" in arguments:
        at = arguments.index("--variant")
        chosen = arguments[at + 1].split(",")
        del arguments[at:at + 2]
        unknown = [name for name in chosen if name not in VARIANTS]
        if unknown:
            raise SystemExit(f"--variant {','.join(unknown)}: unknown; use one of {', '.join(VARIANTS)}")
    main(*arguments, variants=tuple(chosen))
