"""The notebook a team would write instead of the pipeline: the yardstick of bench/overhead.py.

  python bench/plain_keras.py <spec> <work dir> [epochs]

Same data folders, same model family, hyperparameters, augmentation, epochs,
batch size and learning rate as the spec's Trainer; then evaluate, export a
SavedModel and a full-integer int8 TFLite model. No validation of the data,
no schema, no blessing, no versioned push: that is what the pipeline adds.
Prints one JSON line.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from imagepipe.spec import load_spec  # noqa: E402
from trainer_modules.base import augmenter, compile_model  # noqa: E402


def main(spec_path: str, work_dir: str, epochs: str | None = None) -> None:
    started = time.perf_counter()
    loaded = load_spec(spec_path)
    spec, work = loaded.spec, Path(work_dir)
    trainer = spec.trainer
    epochs = int(epochs) if epochs else trainer.epochs
    keras.utils.set_random_seed(trainer.seed)

    # 1. Read the class folders, 80/20.
    train, evaluation = keras.utils.image_dataset_from_directory(
        loaded.data_root, color_mode="grayscale" if spec.image.channels == 1 else "rgb",
        image_size=(spec.image.height, spec.image.width), batch_size=trainer.batch_size,
        validation_split=0.2, subset="both", seed=trainer.seed)
    class_names = train.class_names

    def scale(images, labels):
        return images / 255.0, labels

    augment = augmenter(trainer.augment, trainer.seed)
    train = train.map(scale).cache().shuffle(trainer.shuffle_buffer, seed=trainer.seed)
    if augment is not None:
        train = train.map(lambda x, y: (augment(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    train = train.prefetch(tf.data.AUTOTUNE)
    evaluation = evaluation.map(scale).cache().prefetch(tf.data.AUTOTUNE)

    # 2. Train the same model.
    family = importlib.import_module(f"trainer_modules.{trainer.module}")
    hparams = family.Hyperparameters.model_validate(trainer.hyperparameters or {})
    input_shape = (spec.image.height, spec.image.width, spec.image.channels)
    model = family.build_model(input_shape, len(class_names), hparams)
    compile_model(model, trainer.learning_rate, trainer.steps_per_execution)
    model.fit(train, epochs=epochs, verbose=0)
    trained = time.perf_counter()

    # 3. Evaluate.
    _, accuracy = model.evaluate(evaluation, verbose=0)

    # 4. Export a SavedModel and an int8 TFLite model (the route that works with Keras 3).
    saved_model = work / "saved_model"
    model.export(str(saved_model), verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    samples = train.unbatch().take(spec.push.edge.representative_samples if spec.push.edge else 300)
    converter.representative_dataset = lambda: ([tf.expand_dims(image, 0)] for image, _ in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    tflite = converter.convert()
    (work / "model_int8.tflite").write_bytes(tflite)
    print(json.dumps({"seconds": round(time.perf_counter() - started, 1),
                      "training_seconds": round(trained - started, 1), "epochs": epochs,
                      "accuracy": round(float(accuracy), 4), "int8_bytes": len(tflite)}))


if __name__ == "__main__":
    main(*sys.argv[1:])
