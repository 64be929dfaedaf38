"""Pushes a blessed model to a TF Serving model directory, whole or not at all.

<base>/<version>/ with integer versions that only grow (components/versioned_store.py): the copy
is assembled in a hidden staging folder (TF Serving ignores names that are not integers), with
saved_model.pb and then our push record (assets.extra/imagepipe_push.json) written last, and
renamed into place: a server never sees half a model. A model that was pushed before is not pushed
again. A new version becomes the `canary` of serving/models.config (components/serving_rollout.py);
a re-run of a push that stopped before that step completes it.
"""
import os
import time

from absl import logging
from tfx.components import Pusher
from tfx.components.pusher import executor as tfx_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components import serving_rollout, versioned_store
from components.contracts import SERVING_PUSH_RECORD
from components.versioned_store import VersionedStore

PUSH_INFO = SERVING_PUSH_RECORD
MARKER = "saved_model.pb"  # what TF Serving waits for


def store(base_directory: str) -> VersionedStore:
    return VersionedStore(base_directory, record_name=PUSH_INFO)


def copy_saved_model(model_path: str, base_directory: str, version: int, push_info: dict) -> str:
    """Publishes the SavedModel at `model_path` as `version`, whole (see the module docstring)."""
    def write(staging: str) -> None:
        io_utils.copy_dir(model_path, staging, deny_regex_patterns=[r"saved_model\.pb"])
        os.makedirs(os.path.join(staging, ".last"), exist_ok=True)
        # fileio: the model may be in an object store
        fileio.copy(os.path.join(model_path, MARKER), os.path.join(staging, ".last", MARKER))
        os.makedirs(os.path.join(staging, os.path.dirname(PUSH_INFO)), exist_ok=True)

    return store(base_directory).publish(version, write, push_info, last=MARKER)


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
        versions = store(base)
        model_name = os.path.basename(base.rstrip("/"))
        version = versions.find("model_uri", model.uri)
        if version is not None:
            logging.info("Model %s is already version %d; not pushed again.", model.uri, version)
            model_push.set_int_custom_property("already_pushed", 1)
            # A run stopped after the version folder but before models.config: finish that step now.
            rollout = serving_rollout.record_push(versioned_store.parent(base), model_name, version)
            logging.info("models.config: stable %s, canary %s", rollout.stable, rollout.canary)
        else:
            version = versions.next_version()
            copy_saved_model(model_path, base, version,
                             {"model_uri": model.uri, "model_artifact_id": model.id, "version": version,
                              "pushed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            logging.info("Model pushed to %s/%d.", base, version)
            rollout = serving_rollout.record_push(versioned_store.parent(base), model_name, version)
            logging.info("models.config: stable %s, canary %s", rollout.stable, rollout.canary)
        self._MarkPushed(model_push, pushed_destination=versioned_store.join(base, str(version)),
                         pushed_version=str(version))


class ServingPusher(Pusher):
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
