"""The edge bundle on disk: C sources, manifest, golden vectors; written atomically.

edge/<pipeline>/<version>/ is assembled in a hidden `.partial-*` folder and
renamed into place, so a reader sees a whole version or none; `latest` is
replaced last. Versions are never overwritten.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Dict, List

import jinja2

from components.versions import existing_versions

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)
LATEST = "latest"
MANIFEST = "manifest.json"


def c_identifier(name: str) -> str:
    """digits-mobilenet -> digits_mobilenet (a valid C identifier)."""
    identifier = re.sub(r"\W", "_", name)
    return identifier if re.match(r"[A-Za-z_]", identifier) else f"m_{identifier}"


def resolver_method(op_name: str) -> str:
    """TFLite builtin name -> MicroMutableOpResolver method: CONV_2D -> AddConv2D, RELU6 -> AddRelu6."""
    return "Add" + "".join(part.upper() if part[0].isdigit() else part.capitalize() for part in op_name.split("_"))


def hex_lines(data: bytes, per_line: int = 12) -> List[str]:
    return [
        " ".join(f"0x{byte:02x}," for byte in data[start:start + per_line])
        for start in range(0, len(data), per_line)
    ]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def render_sources(pipeline: str, version: int, model_int8: bytes, op_names: List[str]) -> Dict[str, str]:
    name = c_identifier(pipeline)
    common = {"pipeline": pipeline, "version": version, "name": name}
    return {
        "model_data.h": TEMPLATES.get_template("model_data.h.j2").render(
            **common, guard=f"{name.upper()}_MODEL_DATA_H_"),
        "model_data.cc": TEMPLATES.get_template("model_data.cc.j2").render(
            **common, hex_lines=hex_lines(model_int8), length=len(model_int8), sha256=sha256(model_int8)),
        "op_resolver.h": TEMPLATES.get_template("op_resolver.h.j2").render(
            **common, guard=f"{name.upper()}_OP_RESOLVER_H_",
            type_name="".join(part.capitalize() for part in name.split("_")) + "OpResolver",
            methods=[resolver_method(op) for op in op_names]),
    }


def find_version_of(base: Path, model_artifact_id: int) -> int | None:
    for version in existing_versions(str(base)):
        manifest = base / str(version) / MANIFEST
        if manifest.is_file() and json.loads(manifest.read_text())["source_model_artifact_id"] == model_artifact_id:
            return version
    return None


def write_bundle(base: Path, version: int, files: Dict[str, bytes | str], manifest: dict) -> Path:
    """Writes the files and a manifest with each one's size and sha256, then renames into place."""
    destination = base / str(version)
    if destination.exists():
        raise FileExistsError(f"{destination} exists; edge versions are never overwritten")
    base.mkdir(parents=True, exist_ok=True)
    staging = base / f".partial-{version}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    manifest = dict(manifest, files={})
    for name, content in sorted(files.items()):
        data = content.encode() if isinstance(content, str) else content
        (staging / name).write_bytes(data)
        manifest["files"][name] = {"bytes": len(data), "sha256": sha256(data)}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    os.rename(staging, destination)
    point_latest_at(base, existing_versions(str(base))[-1])
    return destination


def repair_latest(base: Path) -> None:
    """`latest` names the newest whole version (one with its manifest), whatever a stopped run left."""
    whole = [v for v in existing_versions(str(base)) if (base / str(v) / MANIFEST).is_file()]
    latest = base / LATEST
    current = latest.read_text().strip() if latest.is_file() else ""
    if whole and current != str(whole[-1]):
        point_latest_at(base, whole[-1])


def point_latest_at(base: Path, version: int) -> None:
    temporary = base / f".{LATEST}-{os.getpid()}"
    temporary.write_text(f"{version}\n")
    os.replace(temporary, base / LATEST)
