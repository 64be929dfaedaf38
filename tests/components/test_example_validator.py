"""Anomalies stop the pipeline before training, and the message shows them."""
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from tfx.components.example_validator import labels
from tfx.types import standard_component_specs
from tfx.utils import io_utils

from components.example_validator import DataAnomaliesError, Executor
from tests.conftest import REPO

SCHEMA = io_utils.SchemaReader().read(str(REPO / "schemas" / "image_examples.pbtxt"))


def statistics(frame):
    """As StatisticsGen computes them: with the schema."""
    return tfdv.generate_statistics_from_dataframe(frame, stats_options=tfdv.StatsOptions(schema=SCHEMA))


def validate(frame, tmp_path):
    inputs = {
        standard_component_specs.STATISTICS_KEY: statistics(frame),
        standard_component_specs.SCHEMA_KEY: SCHEMA,
        standard_component_specs.CUSTOM_VALIDATION_CONFIG_KEY: None,
    }
    out = tmp_path / "Split-train"
    out.mkdir()
    return Executor()._Validate(inputs, {labels.SCHEMA_DIFF_PATH: str(out)})


def good_rows(n=4):
    return {
        "image": [b"\x89PNG..."] * n, "label": list(range(n)), "label_name": [b"a"] * n,
        "height": [28] * n, "width": [28] * n, "channels": [1] * n, "filename": [b"a/x.png"] * n,
        "format": [b"PNG"] * n,
    }


def test_examples_matching_the_schema_pass(tmp_path):
    anomalies = validate(pd.DataFrame(good_rows()), tmp_path)
    assert not anomalies.anomaly_info


def test_anomalies_raise_with_the_feature_named(tmp_path):
    rows = good_rows()
    rows["format"] = [b"TIFF"] * 4  # not a format we ingest
    rows["channels"] = [7] * 4
    with pytest.raises(DataAnomaliesError) as error:
        validate(pd.DataFrame(rows), tmp_path)
    message = str(error.value)
    assert "Split-train" in message and "training stopped" in message
    assert "feature `format`" in message and "feature `channels`" in message


def test_the_statistics_keep_the_image_bytes_out_of_top_values_and_unique_counts():
    """Without image_domain, TFDV counts every distinct value of a bytes feature: every image, kept in
    memory by Beam (StatisticsGen's peak memory grew with the number of images, bench/ingest.py)."""
    from tensorflow_data_validation.utils import schema_util

    rows = good_rows(6)
    rows["image"] = [b"\xff\xd8 a different picture %d" % i for i in range(6)]
    features = {f.path.step[0]: f for f in statistics(pd.DataFrame(rows)).datasets[0].features}
    assert features["image"].WhichOneof("stats") == "bytes_stats"  # sizes only
    assert features["image"].bytes_stats.max_num_bytes > 0
    assert features["label_name"].string_stats.top_values  # other bytes features keep their counts
    assert [path.steps() for path in schema_util.get_bytes_features(SCHEMA)] == [("image",)]
