"""The edge bundle on disk: C sources, manifest, golden vectors; written atomically.

edge/<pipeline>/<version>/ is assembled in a hidden `.partial-*` folder and
renamed into place (on an object store: copied file by file, the manifest
last), so a reader sees a whole version or none; `latest` is replaced last.
Versions are never overwritten.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Dict, List

import jinja2

from components import versioned_store
from components.versioned_store import VersionedStore, write_atomically

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


def store(base: str) -> VersionedStore:
    return VersionedStore(str(base), record_name=MANIFEST)


def find_version_of(base: str, model_artifact_id: int) -> int | None:
    return store(base).find("source_model_artifact_id", model_artifact_id)


def write_bundle(base: str, version: int, files: Dict[str, bytes | str], manifest: dict) -> str:
    """Writes the files and a manifest with each one's size and sha256 (the manifest last, as the version's
    record), then points `latest` at the newest version."""
    manifest = dict(manifest, files={})
    encoded = {name: content.encode() if isinstance(content, str) else content for name, content in files.items()}
    for name, data in sorted(encoded.items()):
        manifest["files"][name] = {"bytes": len(data), "sha256": sha256(data)}

    def write(staging: str) -> None:
        for name, data in sorted(encoded.items()):
            Path(staging, name).write_bytes(data)

    destination = store(base).publish(version, write, manifest)
    repair_latest(base)
    return destination


def repair_latest(base: str) -> None:
    """`latest` names the newest whole version (one with its manifest), whatever a stopped run left."""
    whole = store(base).versions()
    latest = versioned_store.join(base, LATEST)
    current = versioned_store.read_text(latest).strip() if versioned_store.exists(latest) else ""
    if whole and current != str(whole[-1]):
        write_atomically(latest, f"{whole[-1]}\n")
