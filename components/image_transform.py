"""Transform: encoded image bytes -> float32 [height, width, channels] in [0, 1].

This one graph runs in the Trainer's input pipeline and inside every exported
model, so serving sees exactly the preprocessing that training saw. It accepts
JPEG, PNG, GIF (first frame) and BMP of any size and channel count.
"""
from __future__ import annotations

import tensorflow as tf

IMAGE_KEY = "image"
LABEL_KEY = "label"

# Channel index maps from the decoded channel count (1 to 4) to RGB.
_TO_RGB = tf.constant([[0, 0, 0], [0, 0, 0], [0, 1, 2], [0, 1, 2]], dtype=tf.int32)
_ALPHA_INDEX = tf.constant([-1, 1, -1, 3], dtype=tf.int32)


def _flatten_alpha(image: tf.Tensor) -> tf.Tensor:
    """Returns RGB float [h, w, 3], composing any alpha channel over a
    background that contrasts with the visible content: dark ink on a
    transparent sheet stays visible, and so does light ink."""
    channels = tf.shape(image)[-1]
    rgb = tf.gather(image, _TO_RGB[channels - 1], axis=-1)
    alpha_index = _ALPHA_INDEX[channels - 1]

    def compose():
        alpha = tf.gather(image, [alpha_index], axis=-1)
        opaque_mean = tf.reduce_sum(rgb * alpha) / (3.0 * tf.reduce_sum(alpha) + 1e-6)
        background = tf.round(1.0 - opaque_mean)
        return rgb * alpha + background * (1.0 - alpha)

    return tf.cond(alpha_index >= 0, compose, lambda: rgb)


def _border_median(image: tf.Tensor) -> tf.Tensor:
    """Per-channel median of the outermost pixels: the background colour."""
    border = tf.concat([image[0, :], image[-1, :], image[:, 0], image[:, -1]], axis=0)
    return tf.sort(border, axis=0)[tf.shape(border)[0] // 2]


def crop_to_content(image: tf.Tensor, margin: float, threshold: float = 0.25) -> tf.Tensor:
    """Crops to the bounding box of whatever differs from the background, then
    pads it to a square with `margin` of background on each side.

    This is MNIST's own normalisation (each digit fitted into the centre 20x20
    of 28x28): digits, letters or symbols from any source, written large or
    small, centred or not, reach the model at one size and position.
    """
    background = _border_median(image)
    ink = tf.reduce_max(tf.abs(image - background), axis=-1) > threshold
    rows = tf.where(tf.reduce_any(ink, axis=1))[:, 0]
    cols = tf.where(tf.reduce_any(ink, axis=0))[:, 0]

    def crop_and_pad():
        top, bottom = tf.cast(rows[0], tf.int32), tf.cast(rows[-1], tf.int32) + 1
        left, right = tf.cast(cols[0], tf.int32), tf.cast(cols[-1], tf.int32) + 1
        content = image[top:bottom, left:right] - background
        content_height, content_width = bottom - top, right - left
        side = tf.cast(tf.cast(tf.maximum(content_height, content_width), tf.float32) / (1.0 - 2.0 * margin), tf.int32)
        pad_top, pad_left = (side - content_height) // 2, (side - content_width) // 2
        padded = tf.pad(content, [[pad_top, side - content_height - pad_top], [pad_left, side - content_width - pad_left], [0, 0]])
        return padded + background

    return tf.cond(tf.size(rows) > 0, crop_and_pad, lambda: image)


def dark_background(image: tf.Tensor) -> tf.Tensor:
    """Inverts images whose background is light, so that dark ink on paper and
    light strokes on a dark screen reach the model alike."""
    return tf.cond(tf.reduce_mean(_border_median(image)) > 0.5, lambda: 1.0 - image, lambda: image)


def decode_image(
    image_bytes: tf.Tensor, height: int, width: int, channels: int,
    content_margin: float | None = None, dark_background_: bool = False,
) -> tf.Tensor:
    """One encoded image (scalar string) -> float32 [height, width, channels].

    `content_margin`: crop to the content and keep this margin (for digits and
    characters); None keeps the whole frame (for photos).
    """
    image = tf.io.decode_image(image_bytes, expand_animations=False, dtype=tf.float32)
    image = _flatten_alpha(image)
    if channels == 1:
        image = tf.image.rgb_to_grayscale(image)
    if content_margin is not None:
        image = crop_to_content(image, content_margin)
    if dark_background_:
        image = dark_background(image)
    image = tf.image.resize(image, [height, width], antialias=True)
    image = tf.clip_by_value(image, 0.0, 1.0)
    image.set_shape([height, width, channels])
    return image


def decode_images(image_bytes: tf.Tensor, height: int, width: int, channels: int,
                  content_margin: float | None = None, dark_background: bool = False) -> tf.Tensor:
    """A batch of encoded images [batch] -> float32 [batch, height, width, channels]."""
    image_bytes = tf.reshape(image_bytes, [-1])
    return tf.map_fn(
        lambda one: decode_image(one, height, width, channels, content_margin, dark_background),
        image_bytes,
        fn_output_signature=tf.TensorSpec([height, width, channels], tf.float32),
    )


def preprocessing_fn(inputs, custom_config):
    """TFX Transform entry point; `custom_config` carries the spec's `image` section."""
    image = custom_config["image"]
    return {IMAGE_KEY: decode_images(
        inputs[IMAGE_KEY], image["height"], image["width"], image["channels"],
        image["content_margin"], image["dark_background"],
    )}


def describe_preprocessing(image_config: dict) -> str:
    """In words, what decode_image does with the spec's `image` section (for edge manifests)."""
    steps = ["decode (JPEG, PNG, GIF, BMP)", f"convert to {'grayscale' if image_config['channels'] == 1 else 'RGB'}"]
    if image_config.get("content_margin") is not None:
        steps.append(f"crop to the content with a margin of {image_config['content_margin']} of the side")
    if image_config.get("dark_background"):
        steps.append("invert images with a light background")
    steps.append(f"resize to {image_config['height']}x{image_config['width']} (antialiased bilinear)")
    steps.append("pixel values scaled to [0, 1]")
    return ", then ".join(steps)
