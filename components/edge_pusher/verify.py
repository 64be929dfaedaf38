"""Checks an edge bundle against its manifest, and its int8 model in TFLite Micro.

`imagepipe edge verify <bundle dir>` runs this; so do the tests. Each check is a
step of its own, so that a failure names the step and one broken check cannot
hide behind another:

  files     every file's size and sha256 match the manifest
  c_array   model_data.cc holds exactly model_int8.tflite
  model     full-integer, with the manifest's shapes, dtypes, scales and zero-points
  ops       op_resolver.h registers exactly the model's ops
  golden    TFLite Micro and TFLite's reference kernels reproduce golden.json bit for bit
  arena     the model runs in the manifest's arena and not in 16 bytes less
            (the tflite-micro Python wrapper's figure: a host upper bound, see the manifest)
  latest    only when the bundle still sits in its store: `latest` is not older than it

A bundle is self-contained: copied anywhere, it verifies without its store.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

from components.edge_pusher import bundle, tflite_tools


class BundleMismatch(AssertionError):
    """The bundle does not match its manifest, or the model does not behave as recorded."""

    def __init__(self, bundle_dir: Path, problems: Dict[str, List[str]]):
        self.problems = problems
        super().__init__(f"{bundle_dir}: " + "; ".join(
            f"[{step}] {message}" for step, messages in problems.items() for message in messages))


def c_array_bytes(source: str) -> bytes:
    body = source.split("= {", 1)[1].split("};", 1)[0]
    return bytes(int(value, 16) for value in re.findall(r"0x([0-9a-f]{2})", body))


def check_files(bundle_dir: Path, manifest: dict, model: bytes) -> List[str]:
    problems = []
    for name, recorded in manifest["files"].items():
        path = bundle_dir / name
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        data = path.read_bytes()
        if len(data) != recorded["bytes"]:
            problems.append(f"{name}: {len(data)} bytes, manifest says {recorded['bytes']}")
        if hashlib.sha256(data).hexdigest() != recorded["sha256"]:
            problems.append(f"{name}: sha256 differs from the manifest")
    return problems


def check_c_array(bundle_dir: Path, manifest: dict, model: bytes) -> List[str]:
    if c_array_bytes((bundle_dir / "model_data.cc").read_text()) != model:
        return ["model_data.cc does not hold model_int8.tflite"]
    return []


def check_model(bundle_dir: Path, manifest: dict, model: bytes) -> List[str]:
    problems = []
    try:
        tflite_tools.check_full_integer(model)
    except tflite_tools.NotMicroReady as exc:
        problems.append(str(exc))
    for role, detail in zip(("input", "output"), tflite_tools.io_details(model)):
        recorded = manifest[role]
        scale, zero_point = detail["quantization"]
        if list(detail["shape"]) != recorded["shape"]:
            problems.append(f"{role} shape {list(detail['shape'])} != manifest {recorded['shape']}")
        if np.dtype(detail["dtype"]).name != recorded["dtype"]:
            problems.append(f"{role} dtype {np.dtype(detail['dtype']).name} != manifest {recorded['dtype']}")
        if not (np.isclose(scale, recorded["scale"]) and zero_point == recorded["zero_point"]):
            problems.append(f"{role} quantization ({scale}, {zero_point}) != manifest "
                            f"({recorded['scale']}, {recorded['zero_point']})")
    return problems


def check_ops(bundle_dir: Path, manifest: dict, model: bytes) -> List[str]:
    problems = []
    ops = tflite_tools.op_names(model)
    if ops != manifest["ops"]:
        problems.append(f"the model's ops {ops} != manifest {manifest['ops']}")
    resolver = (bundle_dir / "op_resolver.h").read_text()
    registered = re.findall(r"resolver\.(Add\w+)\(\)", resolver)
    if sorted(registered) != sorted(bundle.resolver_method(op) for op in ops):
        problems.append(f"op_resolver.h registers {registered}, the model uses {ops}")
    if f"<{len(ops)}>" not in resolver:
        problems.append(f"op_resolver.h does not size its resolver for {len(ops)} op(s)")
    return problems


def check_golden(bundle_dir: Path, manifest: dict, model: bytes) -> List[str]:
    problems = []
    golden = json.loads((bundle_dir / "golden.json").read_text())
    inputs = np.array(golden["inputs"], dtype=np.int8)
    expected = np.array(golden["outputs"], dtype=np.int8)
    # The wrapper's default arena: the arena itself is the next step's business, and a
    # too-small one can crash the wrapper instead of raising.
    if not np.array_equal(tflite_tools.run_micro(model, inputs), expected):
        problems.append("TFLite Micro outputs differ from golden.json")
    if not np.array_equal(tflite_tools.run_tflite(model, inputs), expected):
        problems.append("TFLite (reference kernels) outputs differ from golden.json")
    return problems


def check_arena(bundle_dir: Path, manifest: dict, model: bytes) -> List[str]:
    problems = []
    arena = manifest["arena_bytes"]
    sample = np.array(json.loads((bundle_dir / "golden.json").read_text())["inputs"][0], dtype=np.int8)
    if not tflite_tools.runs_in_arena(model, sample, arena):
        problems.append(f"the model does not run in the manifest's arena_bytes {arena}")
    elif tflite_tools.runs_in_arena(model, sample, arena - 16):
        problems.append(f"the model also runs in {arena - 16} bytes: arena_bytes {arena} is not the measured minimum")
    return problems


def check_latest(bundle_dir: Path, manifest: dict, model: bytes) -> List[str]:
    latest = bundle_dir.parent / bundle.LATEST
    if not latest.is_file():
        return []  # a bundle copied out of its store
    text = latest.read_text().strip()
    if not text.isdigit() or int(text) < manifest["version"]:
        return [f"{latest} names {text!r}, older than this version {manifest['version']}"]
    return []


STEPS: Dict[str, Callable[[Path, dict, bytes], List[str]]] = {
    "files": check_files, "c_array": check_c_array, "model": check_model, "ops": check_ops,
    "golden": check_golden, "arena": check_arena, "latest": check_latest,
}


def verify_bundle(bundle_dir: Path) -> dict:
    """Returns the manifest if every step passes; raises BundleMismatch with each failing step's problems."""
    bundle_dir = Path(bundle_dir)
    manifest = json.loads((bundle_dir / bundle.MANIFEST).read_text())
    model = (bundle_dir / "model_int8.tflite").read_bytes()
    problems = {step: found for step, check in STEPS.items() if (found := check(bundle_dir, manifest, model))}
    if problems:
        raise BundleMismatch(bundle_dir, problems)
    return manifest
