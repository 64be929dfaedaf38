"""Int8 samples through the TFLite Micro interpreter, the code that runs on the device, on every core.

TFLite Micro's Python interpreter runs its reference kernels, not TFLite's optimised ones: about 27 ms
per 28x28 digit for the digits convnet on this 2-core machine, 27 s for the 1,003-image eval split on one
core. Each sample is independent, so the samples are split over worker processes; each worker imports
only numpy and TFLite Micro (0.5 s), not TensorFlow, and the outputs are the same, in the same order.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os

import numpy as np

# Below this many samples per worker, starting a process costs more than it saves.
MIN_SAMPLES_PER_WORKER = 64


def interpreter(model: bytes, arena_bytes: int | None = None):
    """A TFLite Micro interpreter for `model` (arena_bytes None: the wrapper's default arena)."""
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(model, arena_size=arena_bytes)


def run(model: bytes, inputs: np.ndarray, arena_bytes: int | None = None) -> np.ndarray:
    """One interpreter, one sample at a time (the converted models have batch size 1)."""
    micro = interpreter(model, arena_bytes)
    outputs = []
    for sample in inputs:
        micro.set_input(sample[None], 0)
        micro.invoke()
        outputs.append(np.array(micro.get_output(0))[0].copy())
    return np.stack(outputs)


def run_on_all_cores(model: bytes, inputs: np.ndarray, arena_bytes: int | None = None,
                     workers: int | None = None) -> np.ndarray:
    """`run`, with the samples split in order over `workers` processes (default: one per core)."""
    inputs = np.asarray(inputs)
    workers = min(workers or os.cpu_count() or 1, len(inputs) // MIN_SAMPLES_PER_WORKER)
    if workers <= 1:
        return run(model, inputs, arena_bytes)
    # spawn: the caller is a process with TensorFlow's threads running; a forked copy of it can deadlock.
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = pool.map(run, [model] * workers, np.array_split(inputs, workers), [arena_bytes] * workers)
        return np.concatenate(list(parts))
