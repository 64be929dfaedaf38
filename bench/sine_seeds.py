"""Benchmark: is the sine hello world reliable across seeds, or lucky?

Trains the spec's 16-16-1 model (pipelines/sine.yaml: epochs, batch size,
learning rate, restarts, stuck_mse) with trainer.seed = 0..N-1 on the spec's
generated data (60/20 train/eval by position), counting the attempts each seed
needed and how many single attempts were stuck. Writes
bench/results/sine_seeds.json.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from imagepipe.datasets import write_sine  # noqa: E402
from trainer_modules import sine  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from measure import write_result  # noqa: E402


def main(seeds: int = 10) -> None:
    spec = yaml.safe_load((REPO / "pipelines" / "sine.yaml").read_text())
    trainer, generate = spec["trainer"], spec["data"]["generate"]
    hp = sine.Hyperparameters(**trainer["hyperparameters"])
    with tempfile.TemporaryDirectory() as scratch:
        data = np.loadtxt(write_sine(Path(scratch), generate["samples"], generate["noise"], generate["seed"]),
                          delimiter=",", skiprows=1, dtype=np.float32)
    train, evaluation = data[:600], data[600:800]
    train_ds = tf.data.Dataset.from_tensor_slices((train[:, :1], train[:, 1:])).shuffle(1000, seed=0).batch(
        trainer["batch_size"], drop_remainder=True)
    eval_ds = tf.data.Dataset.from_tensor_slices((evaluation[:, :1], evaluation[:, 1:])).batch(trainer["batch_size"])

    rows = []
    for seed in range(seeds):
        attempts = []

        def fit(attempt):
            keras.utils.set_random_seed(seed * 100 + attempt)
            model = sine.build_model(hp)
            model.compile(keras.optimizers.Adam(trainer["learning_rate"]), loss="mse")
            model.fit(train_ds, epochs=trainer["epochs"], verbose=0)
            mse = float(model.evaluate(eval_ds, verbose=0))
            attempts.append(mse)
            return model, mse

        _, best = sine.train_with_restarts(fit, hp)
        rows.append({"seed": seed, "attempt_eval_mse": attempts, "final_eval_mse": best})
        print(json.dumps(rows[-1]), flush=True)
    first = [r["attempt_eval_mse"][0] for r in rows]
    results = {
        "seeds": seeds, "epochs": trainer["epochs"], "stuck_mse": hp.stuck_mse, "restarts": hp.restarts,
        "first_attempts_stuck": sum(m > hp.stuck_mse for m in first),
        "runs_stuck_after_restarts": sum(r["final_eval_mse"] > hp.stuck_mse for r in rows),
        "worst_final_eval_mse": max(r["final_eval_mse"] for r in rows),
        "runs": rows,
    }
    write_result("sine_seeds", results)
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}))


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:2]))
