"""The README's sample outputs (docs/samples/*.txt, written by docs/samples/regenerate.py) and their shape.

A sample's shape is its text with every number, path and timestamp replaced by a
placeholder: two outputs of the same formatter for the same kind of run have the
same shape whatever the data, so a test can hold a fresh run's output against
the README's sample and fail when the formatter changes and the README does not.
"""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "docs" / "samples"
BLOCK = re.compile(r"<!-- sample: (?P<name>[\w-]+) -->\n```\n(?P<body>.*?)```\n<!-- end of sample -->", re.S)

_PIPELINE = re.compile(r"^pipeline [\w-]+,")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?")
_PATH = re.compile(r"(?<![\w.])[~\w.+-]*/[\w./+-]*")
_NUMBER = re.compile(r"[-+]?\d[\d,]*(\.\d+)?")


def readme_blocks() -> dict[str, str]:
    return {m["name"]: m["body"] for m in BLOCK.finditer((REPO / "README.md").read_text())}


def sample(name: str) -> str:
    return (SAMPLES / f"{name}.txt").read_text()


def shape(text: str) -> list[str]:
    lines = []
    for line in text.strip("\n").splitlines():
        line = _PIPELINE.sub("pipeline <name>,", line)
        line = _TIMESTAMP.sub("<time>", line)
        line = _PATH.sub("<path>", line)
        lines.append(_NUMBER.sub("<n>", line))
    return lines
