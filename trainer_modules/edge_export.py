"""What the Trainer leaves for the EdgePusher, beside the serving model.

<model>/Format-Edge/ (the names are in components/contracts.py)
  model/    the bare Keras model, batch size 1, float inputs as the model sees
            them. Exported with keras.export.ExportArchive: the TFLite
            converter aborts on Keras 3 models given any other way on TF 2.16.
  inputs/   a SavedModel that turns serialized tf.Examples into
            {"inputs", "label"} with the Trainer's own preprocessing, so the
            EdgePusher calibrates and evaluates on exactly what the model saw.
  edge.json task, labels, what the input and the output mean.
"""
import os
from typing import Sequence

import keras
import tensorflow as tf

from components.contracts import EDGE_EXPORT_INPUTS, EDGE_EXPORT_MODEL, EdgeInfo, edge_export_dir  # noqa: F401


def export_edge_model(model: keras.Model, input_shape: Sequence[int], inputs_module: tf.Module,
                      edge_info: EdgeInfo, export_dir: str) -> None:
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
        archive.write_out(os.path.join(export_dir, EDGE_EXPORT_MODEL), verbose=False)
    finally:
        if interactive:
            keras.config.enable_interactive_logging()
    tf.saved_model.save(inputs_module, os.path.join(export_dir, EDGE_EXPORT_INPUTS),
                        signatures={"serving_default": inputs_module.__call__})
    edge_info.write(export_dir)
