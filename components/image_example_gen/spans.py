"""Which data drops one ImageExampleGen run reads.

TFX's FileBasedExampleGen driver resolves `{SPAN}` in the input pattern to the
newest span. The spec's `data.spans` widens that to the newest N spans, or every
span up to the newest: the executor reads each selected span's class folders,
and the driver fingerprints all of them, so that a change to any selected span
(not only the newest) re-runs ingestion.
"""
from __future__ import annotations

import posixpath
import re
from typing import List, Tuple

from tfx.components.example_gen import driver, utils
from tfx.dsl.io import fileio
from tfx.types import standard_component_specs
from tfx.utils import io_utils

SPAN_COUNT_KEY = "span_count"
SPAN_PATTERN_KEY = "span_pattern"
# {SPAN} or {SPAN:width}, as TFX accepts.
_SPAN_SPEC = re.compile(r"\{SPAN(?::\d+)?\}")


def has_span(input_pattern: str) -> bool:
    return bool(_SPAN_SPEC.search(input_pattern))


def span_root_pattern(input_pattern: str) -> str:
    """'drops/span-{SPAN}/*/*' -> 'drops/span-{SPAN}': the folder of one span's class folders."""
    return input_pattern[: -len("/*/*")] if input_pattern.endswith("/*/*") else input_pattern


def select_spans(input_base: str, input_pattern: str, newest_span: int, span_count: int) -> List[Tuple[int, str]]:
    """(span, folder relative to input_base) of the spans to read, oldest first.

    span_count: how many of the newest spans up to `newest_span`; 0 means all."""
    root_pattern = span_root_pattern(input_pattern)
    folder_regex = re.compile(re.escape(_SPAN_SPEC.sub("\0", root_pattern)).replace("\0", r"(\d+)") + "$")
    found = {}
    for path in fileio.glob(posixpath.join(input_base, _SPAN_SPEC.sub("*", root_pattern))):
        relative = posixpath.relpath(path.rstrip("/"), input_base)
        match = folder_regex.match(relative)
        if match and fileio.isdir(path) and int(match.group(1)) <= newest_span:
            found[int(match.group(1))] = relative
    spans = sorted(found.items())
    return spans[-span_count:] if span_count else spans


class SpanRangeDriver(driver.FileBasedDriver):
    """The stock driver (newest span, its version and fingerprint), with the
    fingerprint extended to every span the run reads."""

    def resolve_exec_properties(self, exec_properties, pipeline_info, component_info):
        span_pattern = exec_properties.get(SPAN_PATTERN_KEY) or ""
        exec_properties = super().resolve_exec_properties(exec_properties, pipeline_info, component_info)
        if exec_properties.get(SPAN_COUNT_KEY, 1) == 1 or not has_span(span_pattern):
            return exec_properties
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        spans = select_spans(input_base, span_pattern, exec_properties[utils.SPAN_PROPERTY_NAME],
                             exec_properties[SPAN_COUNT_KEY])
        exec_properties[utils.FINGERPRINT_PROPERTY_NAME] = "\n".join(
            io_utils.generate_fingerprint(f"span {span}", posixpath.join(input_base, folder, "*", "*"))
            for span, folder in spans
        )
        return exec_properties

