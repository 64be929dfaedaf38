"""What a team installs to retrain on a schedule: a crontab line for local runs,
and a Kubeflow Pipelines recurring run for the compiled pipeline.

Both run at most one retraining at a time (flock; KFP max_concurrency 1) and
never back-fill missed slots. The crontab line appends each run's one-line JSON
summary to <output_dir>/<pipeline>/logs/schedule.jsonl; cron mails non-zero
exits (see the README's exit codes).
"""
from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Dict, Optional

from imagepipe.spec import LoadedSpec

# One cron field: *, a number or name, ranges, steps and lists of those.
_ATOM = r"(\*|[0-9a-z]+(-[0-9a-z]+)?)(/[0-9]+)?"
_FIELD = re.compile(rf"^{_ATOM}(,{_ATOM})*$", re.I)
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))


class CronError(ValueError):
    pass


def check_cron(expression: str) -> str:
    """A standard 5-field cron expression (minute hour day-of-month month day-of-week), or CronError."""
    fields = expression.split()
    example = 'fix: e.g. --cron "0 3 * * 1" (Mondays at 03:00)'
    if len(fields) != 5:
        raise CronError(f"--cron {expression!r} has {len(fields)} fields, cron needs 5 "
                        f"(minute hour day-of-month month day-of-week); {example}")
    for value, (name, low, high) in zip(fields, _FIELDS):
        if not _FIELD.match(value):
            raise CronError(f"--cron {expression!r}: {name} field {value!r} is not cron syntax; {example}")
        for number in re.findall(r"(?<![/0-9])[0-9]+", value):
            if not low <= int(number) <= high:
                raise CronError(f"--cron {expression!r}: {name} {number} is outside {low}-{high}; {example}")
    return " ".join(fields)


def crontab_line(loaded: LoadedSpec, cron: str, imagepipe: Optional[Path] = None) -> str:
    """One crontab line: run the spec, one JSON line per run appended to the schedule log."""
    imagepipe = imagepipe or Path(sys.executable).with_name("imagepipe")
    out = loaded.output_dir
    lock, log = out / ".schedule.lock", out / "logs" / "schedule.jsonl"
    command = (f"cd {shlex.quote(str(loaded.project_root))} && mkdir -p {shlex.quote(str(log.parent))} && "
               f"flock -n {shlex.quote(str(lock))} {shlex.quote(str(imagepipe))} run "
               f"{shlex.quote(str(loaded.path.resolve()))} --json >> {shlex.quote(str(log))}")
    return f"{check_cron(cron)} {command}"


def kfp_cron(cron: str) -> str:
    """KFP's cron has a leading seconds field: '0 3 * * 1' -> '0 0 3 * * 1'."""
    return "0 " + check_cron(cron)


def recurring_run(loaded: LoadedSpec, cron: str, job: Dict) -> Dict:
    """The body of POST /apis/v2beta1/recurringruns (or kfp.Client().create_recurring_run's
    arguments): the compiled pipeline, weekly-style cron, one run at a time, no back-fill."""
    return {
        "display_name": f"{loaded.name} retraining",
        "description": f"imagepipe {loaded.path.name}: {loaded.spec.description}".strip(": "),
        "pipeline_spec": job["pipelineSpec"],
        "runtime_config": {"pipeline_root": job["runtimeConfig"]["gcsOutputDirectory"]},
        "trigger": {"cron_schedule": {"cron": kfp_cron(cron)}},
        "max_concurrency": "1",
        "no_catchup": True,
        "mode": "ENABLE",
    }
