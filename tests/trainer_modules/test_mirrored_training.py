"""Training under MirroredStrategy over two logical CPUs: the distributed path, exercised here.

Runs in its own process: logical devices must be configured before TensorFlow
initialises, which other tests in this session have already done.
"""
import subprocess
import sys
import textwrap

from tests.conftest import REPO

SCRIPT = textwrap.dedent("""
    import numpy as np, tensorflow as tf, keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from trainer_modules import convnet, distribution
    strategy = distribution.choose_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
    rng = np.random.default_rng(0)
    # Two classes a convnet separates easily: bright top half vs bright bottom half.
    labels = rng.integers(0, 2, 512)
    images = rng.uniform(0, 0.3, (512, 12, 12, 1)).astype("float32")
    images[labels == 0, :6] += 0.7
    images[labels == 1, 6:] += 0.7
    per_replica = 16
    data = tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(512, seed=0).batch(
        per_replica * strategy.num_replicas_in_sync, drop_remainder=True)
    with strategy.scope():
        model = convnet.build_model((12, 12, 1), 2, convnet.Hyperparameters(filters=[8], dense_units=8, dropout=0.0))
        model.compile(keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    first = model.evaluate(data, verbose=0)[1]
    history = model.fit(data, epochs=4, verbose=0)
    print("ACCURACY", first, history.history["accuracy"][-1])
""")


def test_mirrored_strategy_over_two_cpus_learns():
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    before, after = map(float, result.stdout.split("ACCURACY")[1].split())
    assert after >= 0.95, (before, after)
    assert after > before
