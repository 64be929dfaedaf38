"""The Transform graph: any image in, a [height, width, channels] float in [0, 1] out."""
import numpy as np
import pytest
import tensorflow as tf

from components.image_transform import crop_to_content, decode_image, decode_images, preprocessing_fn
from tests.conftest import encode, gradient


@pytest.mark.parametrize("fmt, channels, mode", [
    ("JPEG", 3, None), ("PNG", 1, None), ("PNG", 4, "RGBA"), ("GIF", 1, None), ("BMP", 3, None),
])
@pytest.mark.parametrize("target_channels", [1, 3])
def test_every_format_and_channel_count_decodes_to_the_target_shape(fmt, channels, mode, target_channels):
    data = encode(gradient(37, 23, channels), fmt, mode)
    image = decode_image(tf.constant(data), 16, 16, target_channels).numpy()
    assert image.shape == (16, 16, target_channels)
    assert image.min() >= 0.0 and image.max() <= 1.0
    # The gradient runs from black (top) to white (bottom) and survives.
    assert image[0].mean() < 0.2 and image[-1].mean() > 0.8


def test_sixteen_bit_png_is_scaled_not_clipped():
    data = tf.io.encode_png(tf.constant(np.full((8, 8, 1), 32768, np.uint16))).numpy()
    assert decode_image(tf.constant(data), 8, 8, 1).numpy().mean() == pytest.approx(0.5, abs=0.01)


def test_transparent_background_becomes_a_contrasting_colour():
    dark_ink = np.zeros((20, 20, 4), np.uint8)
    dark_ink[5:15, 9:11, 3] = 255  # black, opaque stroke on a transparent sheet
    image = decode_image(tf.constant(encode(dark_ink, "PNG", "RGBA")), 20, 20, 1).numpy()[..., 0]
    assert image[0, 0] == pytest.approx(1.0, abs=1e-3)
    assert image[10, 9] == pytest.approx(0.0, abs=0.05)


def test_crop_to_content_fits_the_content_with_the_margin():
    canvas = np.zeros((100, 100, 1), np.float32)
    canvas[10:30, 60:70] = 1.0  # a 20x10 stroke in a corner
    cropped = crop_to_content(tf.constant(canvas), margin=0.25).numpy()
    assert cropped.shape == (40, 40, 1)  # 20 / (1 - 2 * 0.25)
    rows, cols = np.nonzero(cropped[..., 0] > 0.5)
    assert (rows.min(), rows.max() + 1) == (10, 30)
    assert (cols.min(), cols.max() + 1) == (15, 25)


def test_blank_images_pass_through_crop_to_content():
    blank = tf.zeros((12, 9, 1))
    assert crop_to_content(blank, margin=0.1).shape == (12, 9, 1)


def test_dark_background_makes_ink_on_paper_look_like_light_on_dark():
    paper = np.full((28, 28), 255, np.uint8)
    paper[8:20, 13:15] = 0
    screen = 255 - paper
    as_paper = decode_image(tf.constant(encode(paper, "PNG")), 28, 28, 1, content_margin=0.15, dark_background_=True)
    as_screen = decode_image(tf.constant(encode(screen, "PNG")), 28, 28, 1, content_margin=0.15, dark_background_=True)
    np.testing.assert_allclose(as_paper.numpy(), as_screen.numpy(), atol=1e-3)
    assert as_paper.numpy()[0, 0, 0] == pytest.approx(0.0, abs=1e-3)


def test_preprocessing_fn_batches_and_takes_the_spec_image_section():
    batch = tf.constant([encode(gradient(30, 30, 3), "JPEG"), encode(gradient(5, 50, 1), "PNG")])
    out = preprocessing_fn(
        {"image": batch},
        {"image": {"height": 12, "width": 10, "channels": 3, "content_margin": None, "dark_background": False}},
    )
    assert out["image"].shape == (2, 12, 10, 3)
    assert out["image"].dtype == tf.float32
    assert decode_images(batch, 4, 4, 1).shape == (2, 4, 4, 1)
