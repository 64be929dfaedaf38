"""`imagepipe edge device-check` without a TFLM build: the errors a user meets first, and the README's
device program compiled as written against the TFLM headers (with IMAGEPIPE_TFLM_SOURCE).
tests/e2e/test_sine.py runs the whole check, on the host and under QEMU, on a pushed bundle."""
import re
import shutil
import subprocess

import pytest

from components.edge_pusher import bundle, device_check
from tests.conftest import REPO

DIGITS_OPS = ["CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]


def test_a_folder_that_is_not_tflm_is_refused_with_the_fix(tmp_path):
    with pytest.raises(device_check.DeviceCheckError, match=r"not a TensorFlow Lite Micro source tree .* fix: pass"):
        device_check.tflm_tree(tmp_path)


def test_a_missing_cross_compiler_is_named_with_the_package_that_installs_it(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool.startswith("arm-none-eabi") else "/usr/bin/" + tool)
    with pytest.raises(device_check.DeviceCheckError, match="arm-none-eabi-g\\+\\+ is not on PATH.*apt-get install gcc-arm-none-eabi"):
        device_check._check_tools(device_check.TARGETS["cortex-m4f"])


def test_golden_vectors_are_flattened_in_memory_order():
    assert device_check.flat([[[1], [2]], [[3], [-4]]]) == [1, 2, 3, -4]


def test_the_bundle_headers_name_the_model_array_and_the_resolver(tmp_path):
    for name, text in bundle.render_sources("digits-mobilenet", 3, b"\x00" * 16, DIGITS_OPS).items():
        (tmp_path / name).write_text(text)
    assert device_check.bundle_names(tmp_path) == {"model": "digits_mobilenet", "resolver": "DigitsMobilenetOpResolver"}


def test_the_readme_device_program_compiles_as_written(tmp_path, tflm_source):
    """With TFLM's own warning set (its headers have unused parameters), as errors."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("On a device (TFLite Micro)"):]
    program = re.search(r"```c\+\+\n(.*?)```", section, re.S).group(1)
    (tmp_path / "main.cc").write_text(program)
    for name, text in bundle.render_sources("digits", 1, bytes(range(64)), DIGITS_OPS).items():
        (tmp_path / name).write_text(text)
    tree = device_check.tflm_tree(tflm_source, progress=lambda message: None)
    build = device_check.Build(tree, device_check.TARGETS["host"], progress=lambda message: None)
    result = subprocess.run(["g++", *device_check.TARGETS["host"].flags, "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror",
                             f"-I{tmp_path}",
                             *build.includes, "-c", str(tmp_path / "main.cc"), "-o", str(tmp_path / "main.o")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
