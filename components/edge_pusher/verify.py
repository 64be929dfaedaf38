"""Checks an edge bundle against its manifest, and its int8 model in TFLite Micro.

`imagepipe edge verify <bundle dir>` runs this; so do the tests. It checks:
every file's size and sha256; the C array holds exactly model_int8.tflite;
the model is full-integer with the manifest's shapes, scales and zero-points;
op_resolver.h registers exactly the model's ops; TFLite Micro reproduces
golden.json bit for bit, and so does the TFLite interpreter's reference
kernels; the model runs in the manifest's arena and not in a smaller one.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import List

import numpy as np

from components.edge_pusher import bundle, tflite_tools


class BundleMismatch(AssertionError):
    """The bundle does not match its manifest, or the model does not behave as recorded."""


def _expect(condition: bool, message: str, problems: List[str]) -> None:
    if not condition:
        problems.append(message)


def c_array_bytes(source: str) -> bytes:
    body = source.split("= {", 1)[1].split("};", 1)[0]
    return bytes(int(value, 16) for value in re.findall(r"0x([0-9a-f]{2})", body))


def verify_bundle(bundle_dir: Path) -> dict:
    """Returns the manifest if every check passes; raises BundleMismatch listing every failure."""
    bundle_dir = Path(bundle_dir)
    manifest = json.loads((bundle_dir / bundle.MANIFEST).read_text())
    problems: List[str] = []
    for name, recorded in manifest["files"].items():
        data = (bundle_dir / name).read_bytes()
        _expect(len(data) == recorded["bytes"], f"{name}: {len(data)} bytes, manifest says {recorded['bytes']}", problems)
        _expect(hashlib.sha256(data).hexdigest() == recorded["sha256"], f"{name}: sha256 differs from the manifest", problems)

    model = (bundle_dir / "model_int8.tflite").read_bytes()
    _expect(c_array_bytes((bundle_dir / "model_data.cc").read_text()) == model,
            "model_data.cc does not hold model_int8.tflite", problems)
    try:
        tflite_tools.check_full_integer(model)
    except tflite_tools.NotMicroReady as exc:
        problems.append(str(exc))
    input_detail, output_detail = tflite_tools.io_details(model)
    for role, detail in (("input", input_detail), ("output", output_detail)):
        recorded = manifest[role]
        scale, zero_point = detail["quantization"]
        _expect(list(detail["shape"]) == recorded["shape"], f"{role} shape {list(detail['shape'])} != manifest", problems)
        _expect(np.dtype(detail["dtype"]).name == recorded["dtype"], f"{role} dtype differs from the manifest", problems)
        _expect(np.isclose(scale, recorded["scale"]) and zero_point == recorded["zero_point"],
                f"{role} quantization ({scale}, {zero_point}) != manifest", problems)
    ops = tflite_tools.op_names(model)
    _expect(ops == manifest["ops"], f"ops {ops} != manifest {manifest['ops']}", problems)
    registered = re.findall(r"resolver\.(Add\w+)\(\)", (bundle_dir / "op_resolver.h").read_text())
    _expect(sorted(registered) == sorted(bundle.resolver_method(op) for op in ops),
            f"op_resolver.h registers {registered}, the model uses {ops}", problems)
    _expect(f"<{len(ops)}>" in (bundle_dir / "op_resolver.h").read_text(), "op_resolver.h has the wrong op count", problems)

    golden = json.loads((bundle_dir / "golden.json").read_text())
    inputs = np.array(golden["inputs"], dtype=np.int8)
    expected = np.array(golden["outputs"], dtype=np.int8)
    arena = manifest["arena_bytes"]
    micro = tflite_tools.run_micro(model, inputs, arena)
    _expect(np.array_equal(micro, expected), "TFLite Micro outputs differ from golden.json", problems)
    reference = tflite_tools.run_tflite(model, inputs)
    _expect(np.array_equal(reference, expected), "TFLite (reference kernels) outputs differ from golden.json", problems)
    _expect(tflite_tools.runs_in_arena(model, inputs[0], arena), f"the model does not run in {arena} bytes", problems)
    _expect(not tflite_tools.runs_in_arena(model, inputs[0], arena - 16),
            f"the model also runs in {arena - 16} bytes: arena_bytes {arena} is not the measured minimum", problems)

    latest = (bundle_dir.parent / bundle.LATEST).read_text().strip()
    _expect(int(latest) >= manifest["version"], f"latest names {latest}, older than this version", problems)
    if problems:
        raise BundleMismatch(f"{bundle_dir}: " + "; ".join(problems))
    return manifest
