"""convnet builds at digit and photo sizes and learns in a few steps."""
import keras
import numpy as np

from trainer_modules import convnet


def test_builds_for_small_and_large_inputs():
    small = convnet.build_model((28, 28, 1), 10, convnet.Hyperparameters(filters=[32, 64], head="flatten"))
    large = convnet.build_model((224, 224, 3), 5, convnet.Hyperparameters())
    assert small.output_shape == (None, 10)
    assert large.output_shape == (None, 5)
    # global_average keeps a 224x224 model small.
    assert large.count_params() < 400_000


def test_training_steps_lower_the_loss():
    keras.utils.set_random_seed(0)
    model = convnet.build_model((16, 16, 1), 3, convnet.Hyperparameters(filters=[8], dense_units=16, dropout=0.0))
    model.compile(keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    labels = np.arange(96) % 3
    images = np.random.default_rng(0).uniform(0, 0.2, size=(96, 16, 16, 1)).astype("float32")
    for label in range(3):  # class k is bright in the k-th third of the rows
        images[labels == label, 5 * label:5 * label + 5] += 0.8
    history = model.fit(images, labels, epochs=15, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


def test_augmentations_keep_shape_and_range_and_change_the_images():
    import tensorflow as tf

    from trainer_modules.base import augmenter
    from trainer_modules.config import AugmentSpec

    images = tf.random.stateless_uniform([6, 20, 20, 1], seed=[1, 2])
    for options in [{"crop": 0.3}, {"shift": 0.2, "zoom": 0.2, "stretch": 0.2, "rotation": 0.1},
                    {"thicken": 1.0}, {"low_resolution": 0.7}, {"invert": True, "flip": True}]:
        out = augmenter(AugmentSpec(**options), seed=3)(images)
        assert out.shape == images.shape, options
        assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 1.0, options
        assert float(tf.reduce_max(tf.abs(out - images))) > 0.05, options
    assert augmenter(AugmentSpec(), seed=3) is None


def test_augmented_batches_keep_their_static_image_shape_when_the_batch_size_is_unknown():
    """A Flatten head needs height x width x channels known; a last, smaller batch leaves the batch size unknown."""
    import tensorflow as tf

    from trainer_modules.base import augmenter
    from trainer_modules.config import AugmentSpec

    spec = AugmentSpec(shift=0.05, zoom=0.1, stretch=0.1, rotation=0.03, thicken=0.5, low_resolution=0.75, crop=0.1)
    batches = tf.data.Dataset.from_tensor_slices(tf.zeros([10, 28, 28, 1])).batch(4)  # 4, 4, 2: batch dim None
    augmented = batches.map(augmenter(spec, seed=1))
    assert augmented.element_spec.shape.as_list() == [None, 28, 28, 1]


def test_the_geometric_augmentations_are_one_resample_that_keeps_what_each_layer_keeps():
    import numpy as np
    import tensorflow as tf

    from trainer_modules.base import geometric_transform
    from trainer_modules.config import AugmentSpec

    bars = np.zeros((32, 28, 28, 1), np.float32)
    bars[:, 6:22, 4:8, 0] = 1.0  # a bar left of centre: a flip moves it right
    flipped = geometric_transform(AugmentSpec(flip=True), seed=5)(tf.constant(bars)).numpy()
    same = [np.array_equal(out, bars[0]) for out in flipped]
    mirrored = [np.array_equal(out, bars[0][:, ::-1]) for out in flipped]
    assert all(s or m for s, m in zip(same, mirrored)) and any(same) and any(mirrored)

    # Rotation, zoom and stretch act about the centre: a centred blob's centre of mass stays put; a shift of
    # up to 20% moves it by up to 20% of the size, and the composition of all of them keeps it on the canvas.
    blob = np.zeros((16, 28, 28, 1), np.float32)
    blob[:, 10:18, 10:18, 0] = 1.0
    rows, cols = np.mgrid[0:28, 0:28]
    for options, furthest in [({"rotation": 0.1, "zoom": 0.3, "stretch": 0.3}, 0.01), ({"shift": 0.2}, 0.2 * 28 + 0.01)]:
        out = geometric_transform(AugmentSpec(**options), seed=5)(tf.constant(blob)).numpy()[..., 0]
        mass = out.sum(axis=(1, 2))
        centre = np.stack([(out * rows).sum(axis=(1, 2)) / mass, (out * cols).sum(axis=(1, 2)) / mass], axis=1)
        moved = np.abs(centre - 13.5).max()
        assert moved <= furthest, (options, moved)
        if options.get("shift"):
            assert moved > 1.0, options  # it does move
        else:
            assert np.ptp(mass) > 5.0, options  # zoom changes the size
