"""What `imagepipe run` shows while it works, made from TFX's and our components' log lines."""
import logging

from imagepipe.run import ProgressHandler


def shown(*messages):
    lines = []
    handler = ProgressHandler(lines.append)
    for message in messages:
        handler.emit(logging.LogRecord("absl", logging.INFO, __file__, 1, message, None, None))
    return lines


def test_components_ingest_counts_and_epochs_are_shown_and_the_rest_is_not():
    assert shown(
        "Component ImageExampleGen is running.",
        "Component ImageExampleGen is running.",  # TFX says it twice; shown once
        "imagepipe ingested 1,000/5,000 files (20%, 500 files/s)",
        "Beam pipeline started with 2 workers",
        "Component Trainer is running.",
        "imagepipe epoch 1/4 accuracy=0.5000 loss=1.2000",
        "A cached execution 12 is used.",
    ) == [
        "running ImageExampleGen",
        "  ingested 1,000/5,000 files (20%, 500 files/s)",
        "running Trainer",
        "  epoch 1/4 accuracy=0.5000 loss=1.2000",
        "  reused the cached result",
    ]


def test_a_log_line_that_cannot_be_formatted_is_ignored():
    handler = ProgressHandler(lambda line: None)
    handler.emit(logging.LogRecord("x", logging.INFO, __file__, 1, "%d", ("not a number",), None))
