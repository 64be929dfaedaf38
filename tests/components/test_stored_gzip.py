"""Level-0 gzip TFRecords: what TensorFlow's gzip reader reads back, at about the size of the records."""
import gzip

import apache_beam as beam
import numpy as np
import tensorflow as tf

from components.image_example_gen.stored_gzip import WriteToStoredGzipTFRecord


def test_records_read_back_with_tensorflows_gzip_reader_and_are_not_deflated(tmp_path):
    # Incompressible bytes, like JPEG data: deflate would not shrink them, only spend CPU.
    records = [np.random.default_rng(i).bytes(5000 + i) for i in range(50)]
    with beam.Pipeline() as pipeline:
        _ = pipeline | beam.Create(records) | WriteToStoredGzipTFRecord(str(tmp_path / "data_tfrecord"))
    files = sorted(tmp_path.glob("data_tfrecord*.gz"))
    assert files
    read = [r.numpy() for r in tf.data.TFRecordDataset([str(f) for f in files], compression_type="GZIP")]
    assert sorted(read) == sorted(records)
    payload = sum(len(r) + 16 for r in records)  # 16 bytes of TFRecord framing per record
    written = sum(f.stat().st_size for f in files)
    # Stored blocks: 5 bytes per 64 KB block plus the gzip header and trailer.
    assert payload <= written <= payload * 1.01 + 64 * len(files)
    assert sum(len(gzip.decompress(f.read_bytes())) for f in files) == payload


def test_record_framing_is_beams_byte_for_byte(tmp_path):
    import io

    from apache_beam.io.tfrecordio import _TFRecordUtil

    records = [b"", b"x", np.random.default_rng(0).bytes(30_000)]
    with beam.Pipeline() as pipeline:
        _ = pipeline | beam.Create(records) | WriteToStoredGzipTFRecord(str(tmp_path / "data_tfrecord"))
    written = b"".join(gzip.decompress(f.read_bytes()) for f in tmp_path.glob("data_tfrecord*.gz"))
    framed = {}
    for record in records:  # Beam's own writer, with its own CRC32C
        buffer = io.BytesIO()
        _TFRecordUtil.write_record(buffer, record)
        framed[record] = buffer.getvalue()
    assert len(written) == sum(map(len, framed.values()))
    assert all(frame in written for frame in framed.values())
