"""TFLite conversion and TFLite Micro measurements, one small function each.

The Keras model reaches the converter as a SavedModel (the Trainer exports it
with `keras.export.ExportArchive`): with Keras 3 on TF 2.16,
`TFLiteConverter.from_keras_model` aborts the process, and so does a
`tf.saved_model.save` of a module that wraps the Keras model.
"""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
from typing import Iterable, List, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

from components.edge_pusher import micro_runs


class NotMicroReady(ValueError):
    """A model that TFLite Micro cannot run as a full-integer model."""


@contextlib.contextmanager
def _captured_stderr(into: list):
    """What C/C++ code writes to file descriptor 2 inside the block, appended to `into`."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            into.append(captured.read().decode(errors="replace"))


@contextlib.contextmanager
def _stderr_to_log():
    """The converter's C++ code writes its warnings straight to file descriptor 2,
    over the CLI's progress lines; send them to the run's log instead."""
    captured: list = []
    try:
        with _captured_stderr(captured):
            yield
    finally:
        if captured and captured[0].strip():
            logging.info("TFLite converter: %s", captured[0].strip())


def convert_float(saved_model_dir: str) -> bytes:
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.exclude_conversion_metadata = True  # build-time details; bytes on a device's flash
    with _stderr_to_log():
        return converter.convert()


def convert_int8(saved_model_dir: str, representative_inputs: np.ndarray) -> bytes:
    """Full-integer quantization: int8 weights, activations, input and output.

    TFLITE_BUILTINS_INT8 makes the converter fail rather than keep float ops,
    so the result never silently becomes a dynamic-range ("hybrid") model."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.exclude_conversion_metadata = True
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([sample[None]] for sample in representative_inputs)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with _stderr_to_log():
        return converter.convert()


def convert_for_micro(saved_model_dir: str, representative_inputs: np.ndarray) -> Tuple[bytes, bytes]:
    """(float model, full-integer int8 model); NotMicroReady, with the converter's reason, if int8 is impossible."""
    from tensorflow.lite.python.convert import ConverterError

    try:
        model_float = convert_float(saved_model_dir)
        model_int8 = convert_int8(saved_model_dir, representative_inputs)
    except ConverterError as exc:
        raise NotMicroReady(f"the TFLite converter cannot make a full-integer model: {exc}") from exc
    check_full_integer(model_int8)
    return model_float, model_int8


def _interpreter(model: bytes, reference_kernels: bool = True) -> tf.lite.Interpreter:
    # Reference kernels, as on a microcontroller; the default XNNPACK kernels
    # may round differently (what matters for int8).
    resolver = tf.lite.experimental.OpResolverType
    interpreter = tf.lite.Interpreter(
        model_content=model,
        experimental_op_resolver_type=resolver.BUILTIN_REF if reference_kernels else resolver.AUTO,
        num_threads=None if reference_kernels else (os.cpu_count() or 1),
    )
    interpreter.allocate_tensors()
    return interpreter


def check_full_integer(model: bytes) -> None:
    """Refuses hybrid models: TFLite Micro has no kernels for float activations with int8 weights."""
    interpreter = _interpreter(model)
    float_tensors = [t["name"] for t in interpreter.get_tensor_details() if t["dtype"] == np.float32]
    if float_tensors:
        raise NotMicroReady(
            f"not a full-integer model: {len(float_tensors)} float32 tensor(s), e.g. {float_tensors[:3]}; "
            "TFLite Micro cannot run dynamic-range (hybrid) models"
        )
    for detail in interpreter.get_input_details() + interpreter.get_output_details():
        if detail["dtype"] != np.int8:
            raise NotMicroReady(f"tensor {detail['name']} is {np.dtype(detail['dtype']).name}, not int8")


def op_names(model: bytes) -> List[str]:
    """Builtin operator names the model uses (CONV_2D, SOFTMAX, ...), sorted."""
    return sorted({op["op_name"] for op in _interpreter(model)._get_ops_details()})


def io_details(model: bytes) -> Tuple[dict, dict]:
    interpreter = _interpreter(model)
    return interpreter.get_input_details()[0], interpreter.get_output_details()[0]


def quantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return np.clip(np.round(values / scale + zero_point), -128, 127).astype(np.int8)


def dequantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (values.astype(np.float32) - zero_point) * scale


def run_tflite(model: bytes, inputs: Iterable[np.ndarray], reference_kernels: bool = True) -> np.ndarray:
    """Runs one sample at a time (the converted models have batch size 1). reference_kernels=False
    uses TFLite's optimised kernels: for a float model the rounding differences are far below
    what could change a prediction, and the eval split runs about 10x faster."""
    interpreter = _interpreter(model, reference_kernels)
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    outputs = []
    for sample in inputs:
        interpreter.set_tensor(input_index, sample[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output_index)[0].copy())
    return np.stack(outputs)


def run_micro(model: bytes, inputs: Iterable[np.ndarray], arena_bytes: int | None = None) -> np.ndarray:
    """Runs int8 samples in the TFLite Micro interpreter (the code that runs on the device), on every core
    when there are enough of them (micro_runs.py)."""
    samples = inputs if isinstance(inputs, np.ndarray) else np.stack(list(inputs))
    return micro_runs.run_on_all_cores(model, samples, arena_bytes)


# Run in a child process: with some too-small arenas the TFLite Micro Python
# wrapper crashes (SIGSEGV) instead of raising.
_ARENA_PROBE = """
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
interpreter = runtime.Interpreter.from_bytes(open(sys.argv[1], "rb").read(), arena_size=int(sys.argv[2]))
interpreter.set_input(np.load(sys.argv[3]), 0)
interpreter.invoke()
"""


def runs_in_arena(model: bytes, sample: np.ndarray, arena_bytes: int) -> bool:
    """Whether TFLite Micro allocates and runs the model in `arena_bytes` (checked in a child process)."""
    with tempfile.TemporaryDirectory() as scratch:
        model_path, sample_path = os.path.join(scratch, "model.tflite"), os.path.join(scratch, "sample.npy")
        with open(model_path, "wb") as f:
            f.write(model)
        np.save(sample_path, sample[None])
        probe = subprocess.run([sys.executable, "-c", _ARENA_PROBE, model_path, str(arena_bytes), sample_path],
                               capture_output=True, timeout=600)
    return probe.returncode == 0


def measure_arena_bytes(model: bytes, sample: np.ndarray) -> int:
    """The smallest tensor arena (to 16 bytes) in which TFLite Micro runs the model:
    what its recording allocator reports after one inference, confirmed by running it."""
    report: list = []
    interpreter = micro_runs.interpreter(model, max(64 << 20, 10 * len(model)))
    interpreter.set_input(sample[None], 0)
    interpreter.invoke()
    with _captured_stderr(report):
        interpreter.print_allocations()
    found = re.search(r"Arena allocation total (\d+) bytes", report[0])
    if not found:
        raise NotMicroReady(f"TFLite Micro reported no arena size: {report[0][:500]!r}")
    recorded = int(found.group(1))
    # The wrapper aligns the start of the arena it is given, which can cost a
    # few bytes beyond the recorded total: step up to the first size that runs.
    for arena_bytes in range(recorded, recorded + 1024, 16):
        if runs_in_arena(model, sample, arena_bytes):
            return arena_bytes
    raise NotMicroReady(f"TFLite Micro recorded a {recorded}-byte arena, but the model does not run in {recorded + 1024}")
