"""TF Serving rollout: outputs/<pipeline>/serving/models.config, with `stable` and `canary` labels.

The file is a ModelServerConfig text proto for
`tensorflow_model_server --model_config_file=... --model_config_file_poll_wait_seconds=60`:
the server loads exactly the labelled versions, so a label always points at a
loaded model.

  a push        the new version becomes `canary` (and `stable` too, if there is none yet)
  promote       `stable` := `canary`
  rollback      `stable` := the newest pushed version older than `stable`; `canary` follows it

Every pushed version was blessed by the Evaluator, so "previous blessed" is the
next lower version directory. The file is replaced atomically (written to a
temporary name, then renamed), so a server polling it never reads half a file.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import List, Optional

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components.versions import existing_versions

CONFIG_NAME = "models.config"


class RolloutError(RuntimeError):
    """A promote or rollback that cannot be done; the message says why and what to do."""


@dataclasses.dataclass
class Rollout:
    name: str
    base_path: str
    stable: Optional[int]
    canary: Optional[int]

    @property
    def versions(self) -> List[int]:
        return sorted({v for v in (self.stable, self.canary) if v is not None})


def config_path(serving_dir: Path) -> Path:
    return Path(serving_dir) / CONFIG_NAME


def pushed_versions(base_path: Path) -> List[int]:
    """Whole versions only: a version directory counts once its saved_model.pb is there."""
    return [v for v in existing_versions(str(base_path)) if (base_path / str(v) / "saved_model.pb").is_file()]


def to_proto(rollout: Rollout) -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = rollout.name
    model.base_path = rollout.base_path
    model.model_platform = "tensorflow"
    model.model_version_policy.specific.versions.extend(rollout.versions)
    if rollout.stable is not None:
        model.version_labels["stable"] = rollout.stable
    if rollout.canary is not None:
        model.version_labels["canary"] = rollout.canary
    return config


def read(serving_dir: Path) -> Optional[Rollout]:
    path = config_path(serving_dir)
    if not path.is_file():
        return None
    config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    model = config.model_config_list.config[0]
    labels = dict(model.version_labels)
    return Rollout(model.name, model.base_path, labels.get("stable"), labels.get("canary"))


def write(serving_dir: Path, rollout: Rollout) -> Path:
    path = config_path(serving_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{CONFIG_NAME}.{os.getpid()}")
    temporary.write_text(text_format.MessageToString(to_proto(rollout)))
    os.replace(temporary, path)
    return path


def record_push(serving_dir: Path, name: str, version: int) -> Rollout:
    """After a push: the new version is the canary; the first push is also stable."""
    current = read(serving_dir)
    base_path = str(Path(serving_dir).resolve() / name)
    stable = current.stable if current and current.stable is not None else version
    rollout = Rollout(name, base_path, stable, version)
    write(serving_dir, rollout)
    return rollout


def _require(serving_dir: Path) -> Rollout:
    current = read(serving_dir)
    if current is None:
        raise RolloutError(f"{config_path(serving_dir)} does not exist: nothing has been pushed yet; "
                           "fix: run the pipeline until it pushes a model")
    return current


def promote(serving_dir: Path) -> Rollout:
    current = _require(serving_dir)
    if current.canary == current.stable:
        raise RolloutError(f"version {current.stable} is already stable and there is no other canary; "
                           "fix: push a new model first")
    rollout = dataclasses.replace(current, stable=current.canary)
    write(serving_dir, rollout)
    return rollout


def rollback(serving_dir: Path) -> Rollout:
    current = _require(serving_dir)
    older = [v for v in pushed_versions(Path(current.base_path)) if v < current.stable]
    if not older:
        raise RolloutError(f"stable is version {current.stable} and no older pushed version exists under "
                           f"{current.base_path}; nothing to roll back to")
    rollout = dataclasses.replace(current, stable=older[-1], canary=older[-1])
    write(serving_dir, rollout)
    return rollout
