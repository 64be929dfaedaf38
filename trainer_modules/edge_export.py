"""What the Trainer leaves for the EdgePusher, beside the serving model.

<model>/Format-Edge/
  model/    the bare Keras model, batch size 1, float inputs as the model sees
            them. Exported with keras.export.ExportArchive: the TFLite
            converter aborts on Keras 3 models given any other way on TF 2.16.
  inputs/   a SavedModel that turns serialized tf.Examples into
            {"inputs", "label"} with the Trainer's own preprocessing, so the
            EdgePusher calibrates and evaluates on exactly what the model saw.
  edge.json task, labels, what the input and the output mean.
"""
import json
import os
from typing import Sequence

import keras
import tensorflow as tf

EDGE_EXPORT_DIR = "Format-Edge"


def edge_export_dir(serving_model_dir: str) -> str:
    return os.path.join(os.path.dirname(serving_model_dir.rstrip("/")), EDGE_EXPORT_DIR)


def export_edge_model(model: keras.Model, input_shape: Sequence[int], inputs_module: tf.Module,
                      edge_info: dict, export_dir: str) -> None:
    """`inputs_module` is a tf.Module whose `__call__` takes `examples` (tf.string [None])."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve", lambda inputs: model(inputs, training=False),
        input_signature=[tf.TensorSpec([1, *input_shape], tf.float32, name="inputs")],
    )
    # write_out prints its endpoints to stdout, over the CLI's progress lines;
    # without interactive logging Keras sends them to the log instead.
    interactive = keras.config.is_interactive_logging_enabled()
    keras.config.disable_interactive_logging()
    try:
        archive.write_out(os.path.join(export_dir, "model"), verbose=False)
    finally:
        if interactive:
            keras.config.enable_interactive_logging()
    tf.saved_model.save(inputs_module, os.path.join(export_dir, "inputs"),
                        signatures={"serving_default": inputs_module.__call__})
    with open(os.path.join(export_dir, "edge.json"), "w") as f:
        json.dump(edge_info, f, indent=2)
