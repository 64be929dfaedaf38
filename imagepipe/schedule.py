"""What a team installs to retrain on a schedule: a crontab line for local runs,
and a Kubeflow Pipelines recurring run for the compiled pipeline.

Both run at most one retraining at a time (flock; KFP max_concurrency 1) and
never back-fill missed slots. The crontab line appends each run's one-line JSON
summary to <output_dir>/<pipeline>/logs/schedule.jsonl; cron mails non-zero
exits (see the README's exit codes).
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Dict, Optional

from imagepipe.spec import LoadedSpec

_FIELD_NAMES = "minute hour day-of-month month day-of-week"
_EXAMPLE = 'fix: e.g. --cron "0 3 * * 1" (Mondays at 03:00)'


class CronError(ValueError):
    pass


def check_cron(expression: str) -> str:
    """A standard 5-field cron expression (minute hour day-of-month month day-of-week), checked by
    croniter (a maintained parser), or CronError naming the problem and an example."""
    from croniter import croniter
    from croniter.croniter import CroniterError

    fields = expression.split()
    if len(fields) != 5:
        raise CronError(f"--cron {expression!r} has {len(fields)} fields, cron needs 5 ({_FIELD_NAMES}); {_EXAMPLE}")
    try:
        croniter(" ".join(fields))
    except (CroniterError, ValueError) as exc:
        raise CronError(f"--cron {expression!r} is not a valid cron expression ({exc}); {_EXAMPLE}") from None
    return " ".join(fields)


def crontab_line(loaded: LoadedSpec, cron: str, imagepipe: Optional[Path] = None) -> str:
    """One crontab line: run the spec, its one-line JSON summary appended to logs/schedule.jsonl and its
    progress and warnings to logs/schedule.stderr.log. Quiet on success, so cron mails only failures:
    on a non-zero exit the line prints the summary and the end of the stderr log (cron mails that)."""
    imagepipe = imagepipe or Path(sys.executable).with_name("imagepipe")
    out = loaded.output_dir
    logs = Path(loaded.layout.logs_dir)
    lock, log, errors = out / ".schedule.lock", logs / "schedule.jsonl", logs / "schedule.stderr.log"
    q = {name: shlex.quote(str(path)) for name, path in
         (("lock", lock), ("log", log), ("errors", errors), ("logs", log.parent), ("bin", imagepipe),
          ("spec", loaded.path.resolve()), ("root", loaded.project_root))}
    command = (f"cd {q['root']} && mkdir -p {q['logs']} && "
               f"{{ flock -n {q['lock']} {q['bin']} run {q['spec']} --json >> {q['log']} 2>> {q['errors']} || "
               f"{{ status=$?; tail -n 1 {q['log']}; tail -n 20 {q['errors']}; exit $status; }}; }}")
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
