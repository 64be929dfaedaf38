"""Pushes a blessed model to a TF Serving model directory, atomically.

<base>/<version>/ with integer versions that only grow (max existing + 1), so
TF Serving's "latest version" policy picks it up. The copy is assembled in a
hidden temporary folder (TF Serving ignores names that are not integers), with
saved_model.pb copied last, then renamed into place: a server never sees half a
model. A model that was pushed before is not pushed again. A new version
becomes the `canary` of serving/models.config (components/serving_rollout.py).
"""
import json
import os
import time
from pathlib import Path
from typing import Optional

from absl import logging
from tfx.components import Pusher
from tfx.components.pusher import executor as tfx_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components import serving_rollout
from components.versions import existing_versions

PUSH_INFO = os.path.join("assets.extra", "imagepipe_push.json")


def find_pushed_version(base_directory: str, model_uri: str) -> Optional[int]:
    for version in existing_versions(base_directory):
        info_path = os.path.join(base_directory, str(version), PUSH_INFO)
        if fileio.exists(info_path):
            with fileio.open(info_path) as f:
                if json.loads(f.read()).get("model_uri") == model_uri:
                    return version
    return None


def copy_saved_model_atomically(model_path: str, destination: str, push_info: dict) -> None:
    parent, name = os.path.split(destination.rstrip("/"))
    staging = os.path.join(parent, f".partial-{name}-{os.getpid()}")
    if fileio.exists(staging):
        fileio.rmtree(staging)
    io_utils.copy_dir(model_path, staging, deny_regex_patterns=[r"saved_model\.pb"])
    io_utils.write_string_file(os.path.join(staging, PUSH_INFO), json.dumps(push_info, indent=2))
    io_utils.copy_file(os.path.join(model_path, "saved_model.pb"), os.path.join(staging, "saved_model.pb"))
    fileio.rename(staging, destination)


class Executor(tfx_executor.Executor):
    def Do(self, input_dict, output_dict, exec_properties):
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        base = destination.filesystem.base_directory
        fileio.makedirs(base)

        version = find_pushed_version(base, model.uri)
        if version is not None:
            logging.info("Model %s is already version %d; not pushed again.", model.uri, version)
            model_push.set_int_custom_property("already_pushed", 1)
            # A run stopped after the version folder but before models.config: finish that step now.
            rollout = serving_rollout.record_push(Path(base).parent, os.path.basename(base.rstrip("/")), version)
            logging.info("models.config: stable %s, canary %s", rollout.stable, rollout.canary)
        else:
            versions = existing_versions(base)
            version = (versions[-1] + 1) if versions else 1
            copy_saved_model_atomically(
                model_path,
                os.path.join(base, str(version)),
                {"model_uri": model.uri, "model_artifact_id": model.id, "version": version,
                 "pushed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            )
            logging.info("Model pushed to %s/%d.", base, version)
            rollout = serving_rollout.record_push(Path(base).parent, os.path.basename(base.rstrip("/")), version)
            logging.info("models.config: stable %s, canary %s", rollout.stable, rollout.canary)
        self._MarkPushed(model_push, pushed_destination=os.path.join(base, str(version)), pushed_version=str(version))


class ServingPusher(Pusher):
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
