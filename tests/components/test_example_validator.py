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


def validate(frame, tmp_path):
    inputs = {
        standard_component_specs.STATISTICS_KEY: tfdv.generate_statistics_from_dataframe(frame),
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
