"""Transform: encoded image bytes -> float32 [height, width, channels] in [0, 1].

This one graph runs in the Trainer's input pipeline and inside every exported
model, so serving sees exactly the preprocessing that training saw. It accepts
JPEG, PNG, GIF (first frame) and BMP of any size and channel count, within the
limits ingestion applies (components/contracts.py), read from the header before
anything is decoded: a request with a decompression bomb gets an error, and the
server stays up.
"""
from __future__ import annotations

import tensorflow as tf

from components.contracts import IMAGE_KEY, LABEL_KEY, MAX_PIXELS, MAX_SIDE, ImageSpec  # noqa: F401 (keys: importers)

_HEADER_BYTES = 32

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


def _bytes_at(head: tf.Tensor, offset: int, count: int, big_endian: bool) -> tf.Tensor:
    """An unsigned integer from `count` header bytes (int64)."""
    value = tf.constant(0, tf.int64)
    order = range(count) if big_endian else reversed(range(count))
    for i in order:
        value = value * 256 + head[offset + i]
    return value


def _signed32(value: tf.Tensor) -> tf.Tensor:
    return tf.where(value >= 2**31, value - 2**32, value)


def header_size(image_bytes: tf.Tensor) -> tf.Tensor:
    """[height, width] (int64) as the file's header states it, without decoding; [0, 0] for a
    format this cannot read (the decoder then refuses it)."""
    padded = tf.strings.join([tf.strings.substr(image_bytes, 0, _HEADER_BYTES), tf.constant(b"\0" * _HEADER_BYTES)])
    head = tf.cast(tf.io.decode_raw(padded, tf.uint8)[:_HEADER_BYTES], tf.int64)

    def png():  # IHDR: width, height as big-endian 32-bit at 16 and 20
        return tf.stack([_bytes_at(head, 20, 4, True), _bytes_at(head, 16, 4, True)])

    def gif():  # logical screen: width, height as little-endian 16-bit at 6 and 8
        return tf.stack([_bytes_at(head, 8, 2, False), _bytes_at(head, 6, 2, False)])

    def bmp():  # BITMAPCOREHEADER (12 bytes): 16-bit sizes; later headers: signed 32-bit (negative height: top-down)
        core = tf.equal(_bytes_at(head, 14, 4, False), 12)
        width = tf.where(core, _bytes_at(head, 18, 2, False), tf.abs(_signed32(_bytes_at(head, 18, 4, False))))
        height = tf.where(core, _bytes_at(head, 20, 2, False), tf.abs(_signed32(_bytes_at(head, 22, 4, False))))
        return tf.stack([height, width])

    def jpeg():
        return tf.cast(tf.io.extract_jpeg_shape(image_bytes)[:2], tf.int64)

    is_png = tf.reduce_all(tf.equal(head[:8], [137, 80, 78, 71, 13, 10, 26, 10]))
    is_gif = tf.reduce_all(tf.equal(head[:3], [71, 73, 70]))
    is_bmp = tf.reduce_all(tf.equal(head[:2], [66, 77]))
    return tf.case([(is_png, png), (is_gif, gif), (is_bmp, bmp), (tf.io.is_jpeg(image_bytes), jpeg)],
                   default=lambda: tf.zeros([2], tf.int64))


def check_size(image_bytes: tf.Tensor) -> tf.Operation:
    """Fails (InvalidArgumentError, not a crash) on an image over MAX_PIXELS or MAX_SIDE."""
    size = header_size(image_bytes)
    fits = tf.logical_and(size[0] * size[1] <= MAX_PIXELS, tf.reduce_max(size) <= MAX_SIDE)
    return tf.debugging.Assert(fits, [f"image too large: the limits are {MAX_PIXELS:,} pixels and {MAX_SIDE:,} "
                                      "pixels a side; height, width:", size], summarize=2)


def decode_image(
    image_bytes: tf.Tensor, height: int, width: int, channels: int,
    content_margin: float | None = None, dark_background_: bool = False,
) -> tf.Tensor:
    """One encoded image (scalar string) -> float32 [height, width, channels].

    `content_margin`: crop to the content and keep this margin (for digits and
    characters); None keeps the whole frame (for photos).
    """
    with tf.control_dependencies([check_size(image_bytes)]):
        # uint8, then scaled: decode_image(dtype=float32) crashes the process on a valid
        # top-down BMP; uint8 decodes it (16-bit PNGs are reduced to 8 bits either way).
        image = tf.io.decode_image(image_bytes, expand_animations=False, dtype=tf.uint8)
    image = _flatten_alpha(tf.image.convert_image_dtype(image, tf.float32))
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
    """TFX Transform entry point; `custom_config` carries the spec's `image` section as JSON."""
    image = ImageSpec.model_validate(custom_config["image"])
    return {IMAGE_KEY: decode_images(
        inputs[IMAGE_KEY], image.height, image.width, image.channels, image.content_margin, image.dark_background,
    )}


def describe_preprocessing(image: ImageSpec) -> str:
    """In words, what decode_image does with the spec's `image` section (for edge manifests)."""
    steps = ["decode (JPEG, PNG, GIF, BMP)", f"convert to {'grayscale' if image.channels == 1 else 'RGB'}"]
    if image.content_margin is not None:
        steps.append(f"crop to the content with a margin of {image.content_margin} of the side")
    if image.dark_background:
        steps.append("invert images with a light background")
    steps.append(f"resize to {image.height}x{image.width} (antialiased bilinear)")
    steps.append("pixel values scaled to [0, 1]")
    return ", then ".join(steps)
