"""MixMatch's steps against values worked out by hand, and a short run in which the unlabelled loss falls."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer_modules import mixmatch


def test_sharpen_raises_to_one_over_t_and_normalises():
    # T = 0.5: squares. [0.6, 0.4] -> [0.36, 0.16] / 0.52
    sharpened = mixmatch.sharpen(tf.constant([[0.6, 0.4], [0.5, 0.5]]), 0.5).numpy()
    np.testing.assert_allclose(sharpened, [[0.36 / 0.52, 0.16 / 0.52], [0.5, 0.5]], rtol=1e-6)


def test_guessed_labels_average_the_augmentations_then_sharpen():
    # Two augmentations say [0.8, 0.2] and [0.4, 0.6]: mean [0.6, 0.4], sharpened as above.
    guess = mixmatch.guess_labels([tf.constant([[0.8, 0.2]]), tf.constant([[0.4, 0.6]])], 0.5).numpy()
    np.testing.assert_allclose(guess, [[0.36 / 0.52, 0.16 / 0.52]], rtol=1e-6)


def test_no_gradient_flows_into_the_guess():
    logits = tf.Variable([[1.0, 2.0]])
    with tf.GradientTape() as tape:
        guess = mixmatch.guess_labels([tf.nn.softmax(logits)], 0.5)
        loss = tf.reduce_sum(guess * tf.nn.softmax(logits))
    gradient = tape.gradient(loss, logits).numpy()
    # Only the second factor carries a gradient: d/dz sum(q * softmax(z)) with q constant.
    p = tf.nn.softmax(logits).numpy()[0]
    q = guess.numpy()[0]
    expected = p * (q - np.dot(q, p))
    np.testing.assert_allclose(gradient[0], expected, rtol=1e-5)


def test_mixup_uses_lambda_prime_per_example():
    x1, x2 = tf.fill([2, 1, 1, 1], 1.0), tf.fill([2, 1, 1, 1], 0.0)
    p1, p2 = tf.constant([[1.0, 0.0], [1.0, 0.0]]), tf.constant([[0.0, 1.0], [0.0, 1.0]])
    mixed, targets = mixmatch.mixup(x1, p1, x2, p2, tf.constant([0.7, 0.9]))
    np.testing.assert_allclose(mixed.numpy().ravel(), [0.7, 0.9], rtol=1e-6)
    np.testing.assert_allclose(targets.numpy(), [[0.7, 0.3], [0.9, 0.1]], rtol=1e-6)


def test_lambda_prime_is_at_least_one_half_and_beta_distributed():
    lam = mixmatch.sample_lambda(20000, 0.75, seed=1).numpy()
    assert lam.min() >= 0.5 and lam.max() <= 1.0
    # max(L, 1 - L) for L ~ Beta(0.75, 0.75), symmetric: its mean is 1/2 + E|L - 1/2|, about 0.7 (numeric check).
    reference = np.random.default_rng(0).beta(0.75, 0.75, 200000)
    assert abs(lam.mean() - np.maximum(reference, 1 - reference).mean()) < 0.01


@pytest.mark.parametrize("step, expected", [(0, 0.0), (250, 0.25), (1000, 1.0), (5000, 1.0)])
def test_lambda_u_ramps_up_linearly(step, expected):
    assert float(mixmatch.rampup(tf.constant(step), 1000)) == pytest.approx(expected)


def test_pad_and_crop_keeps_the_size_and_moves_at_most_the_padding():
    image = np.zeros([1, 8, 8, 1], np.float32)
    image[0, 3:5, 3:5, 0] = 1.0  # a 2x2 dot in the middle
    crops = mixmatch.pad_and_crop(tf.repeat(tf.constant(image), 64, axis=0), 0.25, flip=False).numpy()
    assert crops.shape == (64, 8, 8, 1)
    centres = [np.argwhere(c[..., 0] == 1.0).mean(axis=0) for c in crops]
    shifts = np.abs(np.array(centres) - 3.5)
    assert shifts.max() <= 2.0 and shifts.max() > 0  # pad 2 pixels: shifts of up to 2, and some
    assert all((c == 1.0).sum() == 4 for c in crops)  # the dot is never cut in half by a shift this small


def test_the_average_decay_warms_up_as_tensorflows_moving_average():
    assert mixmatch.average_decay(0, 0.999) == pytest.approx(0.1)
    assert mixmatch.average_decay(90, 0.999) == pytest.approx(0.91)
    assert mixmatch.average_decay(100_000, 0.999) == 0.999


def test_the_weight_average_covers_batch_norm_statistics_and_is_what_fit_leaves_in_the_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.BatchNormalization()(inputs)))
    model.compile(optimizer=mixmatch.optimizer(0.1, mixmatch.Hyperparameters(weight_decay=0.0)), loss="mse")

    class Record(keras.callbacks.Callback):  # the weights after each step, as the average sees them
        def on_train_begin(self, logs=None):
            self.seen = [model.get_weights()]

        def on_train_batch_end(self, batch, logs=None):
            self.seen.append(model.get_weights())

    record, average = Record(), mixmatch.WeightAverage(model, decay=0.999)
    x = np.random.default_rng(0).normal(3.0, 2.0, (12, 4)).astype(np.float32)
    model.fit(x, np.zeros((12, 2), np.float32), batch_size=4, epochs=1, shuffle=False, verbose=0,
              callbacks=[record, average])
    expected = record.seen[0]
    for step, weights in enumerate(record.seen[1:], start=1):
        keep = min(0.999, (1 + step) / (10 + step))
        expected = [keep * e + (1 - keep) * w for e, w in zip(expected, weights)]
    left = model.get_weights()
    for got, want in zip(left, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5)
    # The batch-norm moving mean (non-trainable) moved, and its average is what the model now holds.
    moving_mean = [w for w in model.weights if "moving_mean" in w.path][0]
    assert not np.allclose(moving_mean.numpy(), 0.0)
    assert not np.allclose(left[0], record.seen[-1][0]) or not np.allclose(left[-1], record.seen[-1][-1])


def test_the_weight_average_can_be_scored_mid_training_and_swapped_back():
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    average = mixmatch.WeightAverage(model, decay=0.9)
    average.averages = [np.full_like(w, 7.0) for w in model.get_weights()]
    before = model.get_weights()
    with average.swapped_in() as swapped:
        assert all(np.all(w == 7.0) for w in swapped.get_weights())
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)


def test_the_best_epochs_average_on_the_eval_split_is_kept_and_logged():
    """Averages scripted per epoch (right on every eval image, wrong on every one, right on half): the
    first is kept, though the last is what the average holds when training ends."""
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy",
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    x = np.array([[-2.0], [-1.0], [1.0], [2.0]], np.float32)
    y = np.array([0, 0, 1, 1])  # class 1 when x > 0
    right = [np.array([[-1.0, 1.0]], np.float32), np.zeros(2, np.float32)]
    wrong = [np.array([[1.0, -1.0]], np.float32), np.zeros(2, np.float32)]
    half = [np.zeros((1, 2), np.float32), np.array([1.0, 0.0], np.float32)]  # class 0 for all

    average = mixmatch.WeightAverage(model, decay=0.9)

    class Script(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            average.averages = [w.copy() for w in (right, wrong, half)[epoch]]

    best = mixmatch.KeepBestAverage(average, tf.data.Dataset.from_tensor_slices((x, y)).batch(2))
    history = model.fit(x, y, batch_size=2, epochs=3, verbose=0, callbacks=[average, Script(), best])
    assert history.history["val_accuracy"] == pytest.approx([1.0, 0.0, 0.5])
    assert best.best_epoch == 1
    for got, want in zip(model.get_weights(), right):
        np.testing.assert_array_equal(got, want)


def test_weight_decay_is_decoupled_and_scaled_by_the_learning_rate():
    hp = mixmatch.Hyperparameters(weight_decay=0.02)
    variable = keras.Variable(2.0)
    optimizer = mixmatch.optimizer(0.5, hp)
    optimizer.apply_gradients([(tf.constant(0.0), variable)])  # no gradient: only the decay moves it
    assert float(variable.numpy()) == pytest.approx(2.0 * (1 - 0.5 * 0.02), rel=1e-6)


def test_a_short_run_lowers_the_unlabelled_loss():
    """Two well separated classes, 8 labels, 256 unlabelled images: the model learns to agree with its
    own guesses on the unlabelled images, so their MixUp loss falls."""
    rng = np.random.default_rng(0)

    def images(label, count):
        x = rng.normal(0.2, 0.05, (count, 8, 8, 1)).astype(np.float32)
        if label:
            x[:, :, 4:] += 0.6
        else:
            x[:, :, :4] += 0.6
        return np.clip(x, 0, 1)

    labeled = np.concatenate([images(0, 4), images(1, 4)])
    labels = np.array([0] * 4 + [1] * 4)
    unlabeled = np.concatenate([images(0, 128), images(1, 128)])
    hp = mixmatch.Hyperparameters(backbone="dense", backbone_hyperparameters={"units": [16]}, rampup_steps=20,
                                  lambda_u=10.0, pad_crop=0.0)
    keras.utils.set_random_seed(0)
    from trainer_modules import dense

    backbone = dense.build_model((8, 8, 1), 2, dense.Hyperparameters(units=[16]))
    model = mixmatch.MixMatch(backbone, 2, hp)
    model.compile(optimizer=mixmatch.optimizer(0.01, hp))
    data = tf.data.Dataset.zip((
        tf.data.Dataset.from_tensor_slices((labeled, labels)).repeat().shuffle(8).batch(8),
        tf.data.Dataset.from_tensor_slices(unlabeled).repeat().shuffle(256).batch(8),
    ))
    history = model.fit(data, steps_per_epoch=20, epochs=6, verbose=0,
                        callbacks=[mixmatch.WeightAverage(backbone, hp.ema_decay)])
    unlabeled_loss = history.history["unlabeled_loss"]
    assert unlabeled_loss[-1] < 0.5 * unlabeled_loss[0], unlabeled_loss
    # The exported weights are the moving average: evaluate them on fresh images.
    test = np.concatenate([images(0, 50), images(1, 50)])
    accuracy = (backbone.predict(test, verbose=0).argmax(axis=1) == np.array([0] * 50 + [1] * 50)).mean()
    assert accuracy > 0.9
