"""trainer_modules/sine.py: the hello-world model and its restarts on a stuck fit."""
import keras
import numpy as np

from trainer_modules import sine


def test_model_is_the_books_16_16_1_perceptron():
    model = sine.build_model(sine.Hyperparameters())
    assert [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)] == [16, 16, 1]
    assert model.count_params() == 2 * 16 + 17 * 16 + 17  # 321


def test_restarts_until_a_fit_is_not_stuck_and_keeps_the_best():
    mses = [0.48, 0.21, 0.011, 0.009]
    calls = []

    def fit(attempt):
        calls.append(attempt)
        return f"model-{attempt}", mses[attempt]

    model, mse = sine.train_with_restarts(fit, sine.Hyperparameters(restarts=3, stuck_mse=0.03))
    assert calls == [0, 1, 2]  # stops at the first good fit
    assert (model, mse) == ("model-2", 0.011)


def test_when_every_attempt_is_stuck_the_best_is_kept():
    mses = [0.3, 0.1, 0.2]
    model, mse = sine.train_with_restarts(lambda a: (f"model-{a}", mses[a]), sine.Hyperparameters(restarts=2))
    assert (model, mse) == ("model-1", 0.1)


def test_a_short_training_learns_the_sine_shape():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 2 * np.pi, (600, 1)).astype("float32")
    model = sine.build_model(sine.Hyperparameters())
    model.compile(keras.optimizers.Adam(0.01), loss="mse")
    model.fit(x, np.sin(x), epochs=60, batch_size=32, verbose=0)
    grid = np.linspace(0, 2 * np.pi, 200, dtype="float32")[:, None]
    assert np.mean(np.abs(model.predict(grid, verbose=0) - np.sin(grid))) < 0.15
