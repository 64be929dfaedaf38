"""TF Serving rollout: outputs/<pipeline>/serving/models.config, with `stable` and `canary` labels.

The file is a ModelServerConfig text proto for
`tensorflow_model_server --model_config_file=... --model_config_file_poll_wait_seconds=60`:
the server loads exactly the labelled versions, so a label always points at a
loaded model.

  a push        the new version becomes `canary` (and `stable` too, if there is none yet)
  promote       `stable` := `canary`, or any pushed version (--version N), forward or back
  rollback      `stable` := the newest pushed version older than `stable`; `canary` follows it

Every pushed version was blessed by the Evaluator, so "previous blessed" is the
next lower version directory. The file is replaced atomically (written to a
temporary name, then renamed), so a server polling it never reads half a file;
every read-modify-write holds serving/.models.config.lock (flock), so a
promote during a push is never silently undone.

On an object store (gs://, s3://) the file is uploaded whole (readers see the old
or the new one), but there is no lock: one writer at a time is the operator's
part there (one pipeline run pushing, no promote or rollback during it).
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import time
from pathlib import Path
from typing import List, Optional

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components import versioned_store
from components.contracts import SERVING_PUSH_RECORD
from components.versioned_store import VersionedStore, write_atomically

CONFIG_NAME = "models.config"
LOCK_NAME = ".models.config.lock"


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


def config_path(serving_dir: Path | str) -> str:
    return versioned_store.join(serving_dir, CONFIG_NAME)


def pushed_versions(base_path: Path | str) -> List[int]:
    """Whole versions only: a version counts once its push record is there (written after saved_model.pb)."""
    return VersionedStore(str(base_path), record_name=SERVING_PUSH_RECORD).versions()


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


@contextlib.contextmanager
def locked(serving_dir: Path | str):
    """One writer of models.config at a time: pushes, promote and rollback (the kernel's flock: a killed
    writer leaves no lock behind). Object stores have no lock (see the module docstring)."""
    if versioned_store.is_remote(serving_dir):
        yield
        return
    serving_dir = Path(serving_dir)
    try:
        serving_dir.mkdir(parents=True, exist_ok=True)
        handle = open(serving_dir / LOCK_NAME, "a+")
    except OSError as exc:
        raise RolloutError(f"{serving_dir}: cannot write here ({exc.strerror}); fix: check the output "
                           "directory's permissions") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read(serving_dir: Path | str) -> Optional[Rollout]:
    """The rollout in models.config; None if there is none. RolloutError if the file cannot be read."""
    path = config_path(serving_dir)
    if not versioned_store.exists(path):
        return None
    try:
        config = text_format.Parse(versioned_store.read_text(path), model_server_config_pb2.ModelServerConfig())
        model = config.model_config_list.config[0]
    except (text_format.ParseError, UnicodeDecodeError, IndexError, OSError) as exc:
        raise RolloutError(f"{path}: not a TF Serving model config ({type(exc).__name__}: {exc}); fix: restore it, "
                           "or delete it and run `imagepipe promote <pipeline> --version N` to write a new one") \
            from None
    labels = dict(model.version_labels)
    return Rollout(model.name, model.base_path, labels.get("stable"), labels.get("canary"))


def write(serving_dir: Path | str, rollout: Rollout) -> str:
    path = config_path(serving_dir)
    try:
        versioned_store.makedirs(versioned_store.parent(path))
        write_atomically(path, text_format.MessageToString(to_proto(rollout)))
    except OSError as exc:
        raise RolloutError(f"{path}: cannot be written ({exc.strerror}); fix: check the output directory's "
                           "permissions and free space") from None
    return path


def record_push(serving_dir: Path | str, name: str, version: int) -> Rollout:
    """After a push, and again on every re-run of the same push (a run stopped between the version folder
    and this file is repaired): the version is the canary unless a later one is; the first is also stable.
    An unreadable models.config is set aside (models.config.unreadable-<time>) and written anew."""
    with locked(serving_dir):
        try:
            current = read(serving_dir)
        except RolloutError:
            path = config_path(serving_dir)
            set_aside = f"{path}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}"
            if versioned_store.is_remote(path):
                from tfx.dsl.io import fileio

                fileio.rename(path, set_aside)
            else:
                os.rename(path, set_aside)
            current = None
        # TF Serving's base_path: absolute, or the object store's URI as it is
        base_path = versioned_store.join(serving_dir, name) if versioned_store.is_remote(serving_dir) \
            else str(Path(serving_dir).resolve() / name)
        if current and current.canary is not None and current.canary >= version and current.stable is not None:
            return current  # already recorded (or a newer push is the canary)
        stable = current.stable if current and current.stable is not None else version
        rollout = Rollout(name, base_path, stable, version)
        write(serving_dir, rollout)
        return rollout


def _require(serving_dir: Path | str) -> Rollout:
    current = read(serving_dir)
    if current is None:
        raise RolloutError(f"{config_path(serving_dir)} does not exist: nothing has been pushed yet; "
                           "fix: run the pipeline until it pushes a model")
    return current


def promote(serving_dir: Path | str, version: Optional[int] = None) -> Rollout:
    """`stable` := `version`, any pushed version; default the canary, or after a rollback the newest push."""
    with locked(serving_dir):
        current = _require(serving_dir)
        pushed = pushed_versions(current.base_path)
        if version is None:
            version = current.canary if current.canary != current.stable else (pushed[-1] if pushed else None)
        if version not in pushed:
            raise RolloutError(f"version {version} is not a pushed version under {current.base_path} (pushed: "
                               f"{', '.join(map(str, pushed)) or 'none'}); fix: pass one of them with --version")
        if version == current.stable:
            raise RolloutError(f"version {version} is already stable; fix: push a new model first, or pass "
                               f"--version with another pushed version ({', '.join(map(str, pushed))})")
        rollout = dataclasses.replace(current, stable=version, canary=version)
        write(serving_dir, rollout)
        return rollout


def rollback(serving_dir: Path | str) -> Rollout:
    with locked(serving_dir):
        current = _require(serving_dir)
        older = [v for v in pushed_versions(current.base_path) if v < current.stable]
        if not older:
            raise RolloutError(f"stable is version {current.stable} and no older pushed version exists under "
                               f"{current.base_path}; nothing to roll back to")
        rollout = dataclasses.replace(current, stable=older[-1], canary=older[-1])
        write(serving_dir, rollout)
        return rollout
