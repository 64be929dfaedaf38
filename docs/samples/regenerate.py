"""Regenerates the README's sample outputs from real runs of the same commands.

    .venv/bin/python docs/samples/regenerate.py [NAME ...]    (default: every sample)

Each sample is what a command printed, run from a scratch copy of the project
(its own outputs/, the data of this checkout) so that paths read as a user's
do. It is written to docs/samples/<name>.txt, with <name>.json beside it
recording the command, the commit and the date; then every
`<!-- sample: <name> -->` ... `<!-- end of sample -->` block of the README is
replaced by the file. tests/imagepipe/test_readme.py fails when a README block differs
from its file, and the end-to-end tests fail when the command's output no
longer has the sample's shape. Nothing here is typed by hand.

    make-run    `imagepipe run pipelines/digits.yaml`: the summary (stdout); about 6 minutes
    progress    the same run's progress (stderr): the first lines, the first Trainer epoch
    validate    `imagepipe validate` on a spec whose evaluation.min_accuracy is 1.5
"""
from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent.parent
README = REPO / "README.md"
BLOCK = re.compile(r"(<!-- sample: (?P<name>[\w-]+) -->\n```\n)(?P<body>.*?)(```\n<!-- end of sample -->)", re.S)


def scratch_project() -> Path:
    """A folder laid out like the project: pipelines/ copied, data/ linked to this checkout's."""
    root = Path(tempfile.mkdtemp(prefix="imagepipe-samples-"))
    shutil.copytree(REPO / "pipelines", root / "pipelines", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (root / "data").symlink_to(REPO / "data")
    return root


def imagepipe(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    command = [str(REPO / ".venv" / "bin" / "imagepipe"), *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=3600)


def progress_excerpt(stderr: str) -> str:
    """The lines a user watches first: up to the second component, then the Trainer's first epoch."""
    lines = stderr.splitlines()
    first = [line for line in lines[: next(i for i, line in enumerate(lines) if line == "running StatisticsGen") + 1]
             if not line.startswith("runner:")]
    trainer = lines.index("running Trainer")
    epoch = next(line for line in lines[trainer:] if line.lstrip().startswith("epoch 1/"))
    return "\n".join(first + ["...", "running Trainer", epoch]) + "\n"


def make_run() -> dict:
    if not (REPO / "data" / "digits").is_dir():  # what `make run` writes first
        subprocess.run([str(REPO / ".venv" / "bin" / "imagepipe"), "data", "digits", "--out", "data/digits"],
                       cwd=REPO, check=True)
    project = scratch_project()
    try:
        result = imagepipe(project, "run", "pipelines/digits.yaml")
        if result.returncode not in (0, 3):
            raise SystemExit(f"imagepipe run failed ({result.returncode}):\n{result.stderr[-4000:]}")
        return {
            "make-run": (result.stdout, "imagepipe run pipelines/digits.yaml (stdout), a first run"),
            "progress": (progress_excerpt(result.stderr), "imagepipe run pipelines/digits.yaml (stderr), excerpt: "
                         "the lines up to `running StatisticsGen`, then `running Trainer` and its first epoch"),
        }
    finally:
        shutil.rmtree(project, ignore_errors=True)


def validate() -> dict:
    project = scratch_project()
    try:
        spec = (project / "pipelines" / "digits.yaml").read_text()
        spec = re.sub(r"min_accuracy: [0-9.]+", "min_accuracy: 1.5", spec)
        assert "min_accuracy: 1.5" in spec, "pipelines/digits.yaml has no evaluation.min_accuracy to change"
        (project / "pipelines" / "digits.yaml").write_text(spec)
        result = imagepipe(project, "validate", "pipelines/digits.yaml")
        assert result.returncode == 2, result
        return {"validate": (result.stderr, "imagepipe validate pipelines/digits.yaml, with evaluation.min_accuracy: 1.5")}
    finally:
        shutil.rmtree(project, ignore_errors=True)


PRODUCERS = {"make-run": make_run, "progress": make_run, "validate": validate}


def commit() -> str:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                           text=True).stdout.strip()
    return head + ("+uncommitted changes" if dirty else "")


def sample_text(name: str, current: str) -> str:
    path = DOCS / f"{name}.txt"
    return path.read_text() if path.is_file() else current  # not generated yet: left as it is


def splice_readme() -> list[str]:
    """Puts each sample file into its README block; returns the names of the blocks."""
    text = README.read_text()
    names = [match["name"] for match in BLOCK.finditer(text)]
    text = BLOCK.sub(lambda m: m.group(1) + sample_text(m["name"], m["body"]) + m.group(4), text)
    README.write_text(text)
    return names


def main(names: list[str]) -> None:
    names = names or sorted(PRODUCERS)
    done: dict = {}
    for producer in dict.fromkeys(PRODUCERS[name] for name in names):
        done.update(producer())
    for name in names:
        text, command = done[name]
        (DOCS / f"{name}.txt").write_text(text)
        (DOCS / f"{name}.json").write_text(json.dumps({
            "command": command, "commit": commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "cpus": os.cpu_count(),
        }, indent=2) + "\n")
        print(f"docs/samples/{name}.txt: {len(text.splitlines())} lines")
    print("README blocks:", ", ".join(splice_readme()))


if __name__ == "__main__":
    main(sys.argv[1:])
