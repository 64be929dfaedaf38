"""`imagepipe data fashion-mnist`: idx files -> PNG folders named and ordered as the contract says."""
import gzip

import numpy as np
import pytest
from PIL import Image

from imagepipe.datasets import FASHION_CLASSES, DataMissing, read_idx, write_fashion_mnist
from tests.conftest import imagepipe


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


@pytest.fixture
def idx_folder(tmp_path):
    """A small Fashion-MNIST lookalike: 3 test images per label, each image filled with its index."""
    folder = tmp_path / "idx"
    folder.mkdir()
    labels = np.repeat(np.arange(10), 3)[::-1].copy()  # label 9 first, as files are not sorted by class
    images = np.stack([np.full((28, 28), index, np.uint8) for index in range(len(labels))])
    write_idx(folder / "t10k-images-idx3-ubyte", images, compress=True)
    write_idx(folder / "t10k-labels-idx1-ubyte", labels, compress=False)  # plain and .gz both read
    return folder, images, labels


def test_label_indices_become_the_contracts_class_folders_with_the_exact_pixels(idx_folder, tmp_path):
    folder, images, labels = idx_folder
    counts = write_fashion_mnist(tmp_path / "out", split="test", per_class=2, source=folder)
    assert counts == {name: 2 for name in FASHION_CLASSES}
    assert FASHION_CLASSES[0] == "tshirt_top" and FASHION_CLASSES[9] == "ankle_boot"
    first = tmp_path / "out" / "ankle_boot" / "test_00000.png"  # index 0 has label 9
    assert np.array_equal(np.asarray(Image.open(first)), images[0])
    shirt = sorted((tmp_path / "out" / "shirt").iterdir())  # label 6: indices 9, 10 (11 is over per_class)
    assert [p.name for p in shirt] == ["test_00009.png", "test_00010.png"]
    assert int(labels[9]) == 6


def test_missing_files_name_the_folders_looked_in_and_the_install_command(tmp_path):
    with pytest.raises(DataMissing, match=r"not in .*fix: apt-get install dataset-fashion-mnist"):
        write_fashion_mnist(tmp_path / "out", split="train", source=tmp_path)
    result = imagepipe("data", "fashion-mnist", "--out", str(tmp_path / "out"), "--source", str(tmp_path))
    assert result.returncode == 1 and "dataset-fashion-mnist" in result.stderr


def test_a_truncated_idx_file_is_refused(tmp_path):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00" * 100)
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)


def test_the_command_writes_the_split_it_is_asked_for(idx_folder, tmp_path):
    folder, _, _ = idx_folder
    result = imagepipe("data", "fashion-mnist", "--out", str(tmp_path / "out"), "--split", "test", "--per-class", "1",
                       "--source", str(folder))
    assert result.returncode == 0, result.stderr
    assert "wrote 10 test images in 10 class folders" in result.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(FASHION_CLASSES)
