import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent


def imagepipe(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """The real CLI in a child process, from the checkout, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "imagepipe.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def encode(array: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format=fmt)
    return buffer.getvalue()


def gradient(height: int, width: int, channels: int) -> np.ndarray:
    rows = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    image = np.repeat(rows, width, axis=1)
    return image if channels == 1 else np.stack([image] * channels, axis=-1)


@pytest.fixture
def mixed_image_folder(tmp_path: Path) -> Path:
    """cats/ and dogs/ with JPEG, PNG, grayscale, RGBA, a PNG named .jpg, and broken files."""
    root = tmp_path / "images"
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    (root / "cats" / "rgb.jpg").write_bytes(encode(gradient(30, 40, 3), "JPEG"))
    (root / "cats" / "gray.png").write_bytes(encode(gradient(20, 20, 1), "PNG"))
    (root / "dogs" / "rgba.png").write_bytes(encode(gradient(16, 24, 4), "PNG", "RGBA"))
    (root / "dogs" / "png_named.jpg").write_bytes(encode(gradient(10, 12, 3), "PNG"))
    (root / "dogs" / "anim.gif").write_bytes(encode(gradient(8, 8, 1), "GIF"))
    (root / "dogs" / "bitmap.bmp").write_bytes(encode(gradient(9, 7, 3), "BMP"))
    truncated = encode(gradient(64, 64, 3), "JPEG")
    (root / "dogs" / "truncated.jpg").write_bytes(truncated[: len(truncated) // 2])
    (root / "dogs" / "empty.png").write_bytes(b"")
    (root / "dogs" / "notes.jpg").write_text("not an image")
    (root / "dogs" / ".hidden.png").write_bytes(encode(gradient(8, 8, 3), "PNG"))
    return root


@pytest.fixture(scope="session")
def tflm_source() -> Path:
    """A TensorFlow Lite Micro source tree (or its .tar.gz) with its third-party downloads, named by
    IMAGEPIPE_TFLM_SOURCE: the device checks build the bundles with it. This machine cannot download
    TFLM, so the tests that need it are skipped, saying so, when it is not given."""
    source = os.environ.get("IMAGEPIPE_TFLM_SOURCE")
    if not source:
        pytest.skip("IMAGEPIPE_TFLM_SOURCE is not set (a TFLM source tree or .tar.gz): no device check")
    if not Path(source).exists():
        pytest.fail(f"IMAGEPIPE_TFLM_SOURCE={source} does not exist")
    return Path(source)
