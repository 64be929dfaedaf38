"""`imagepipe schedule`: the cron check, the crontab line (run for real with a stand-in
imagepipe) and the Kubeflow recurring run (read back with KFP's own API model)."""
import fcntl
import json
import subprocess

import pytest
import yaml
from kfp_server_api import ApiClient

from imagepipe import schedule
from imagepipe.spec import load_spec
from tests.conftest import REPO


@pytest.mark.parametrize("cron", ["0 3 * * 1", "*/15 0-6 1,15 * mon-fri", "30 2 * 1-12/3 7"])
def test_valid_cron_expressions_pass(cron):
    assert schedule.check_cron(cron) == cron


@pytest.mark.parametrize("cron, message", [
    ("0 3 * *", "has 4 fields, cron needs 5"),
    ("0 24 * * 1", "is not a valid cron expression .*out of range"),
    ("61 3 * * 1", "is not a valid cron expression"),
    ("0 3 * * 1;reboot", "is not a valid cron expression"),
    ("abc 3 * * 1", "is not a valid cron expression"),
    ("*/0 * * * *", "is not a valid cron expression"),
])
def test_bad_cron_expressions_are_refused_with_an_example(cron, message):
    with pytest.raises(schedule.CronError, match=message) as error:
        schedule.check_cron(cron)
    assert 'fix: e.g. --cron "0 3 * * 1"' in str(error.value)


@pytest.fixture
def spec(tmp_path):
    (tmp_path / "pipelines").mkdir()
    spec = yaml.safe_load((REPO / "pipelines" / "digits.yaml").read_text())
    spec["data"]["root"] = "data/digits"
    path = tmp_path / "pipelines" / "weekly digits.yaml"  # a space: the line must quote paths
    path.write_text(yaml.safe_dump(spec))
    return load_spec(path, check_paths=False)


def test_the_crontab_line_runs_the_spec_appends_json_and_never_overlaps(spec, tmp_path):
    fake = tmp_path / "fake-imagepipe"
    fake.write_text('#!/bin/sh\necho "{\\"args\\": \\"$*\\", \\"cwd\\": \\"$(pwd)\\"}"\n')
    fake.chmod(0o755)
    line = schedule.crontab_line(spec, "0 3 * * 1", imagepipe=fake)
    minute, hour, day, month, weekday, command = line.split(" ", 5)
    assert (minute, hour, day, month, weekday) == ("0", "3", "*", "*", "1")

    quiet = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, check=True)
    assert quiet.stdout == quiet.stderr == ""  # cron mails whatever a job prints: nothing on success
    log = spec.output_dir / "logs" / "schedule.jsonl"
    entry = json.loads(log.read_text())
    assert entry == {"args": f"run {spec.path.resolve()} --json", "cwd": str(tmp_path)}

    # While a run holds the lock, the next slot does not start a second one.
    with open(spec.output_dir / ".schedule.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        overlapping = subprocess.run(["/bin/sh", "-c", command])
    assert overlapping.returncode != 0
    assert len(log.read_text().splitlines()) == 1


def test_the_recurring_run_is_a_valid_kfp_request_with_kfp_cron(spec):
    job = {"pipelineSpec": {"pipelineInfo": {"name": "digits"}, "root": {}}, "runtimeConfig": {"gcsOutputDirectory": "/gcs/b/digits/tfx"}}
    body = schedule.recurring_run(spec, "0 3 * * 1", job)

    class Response:
        data = json.dumps(body)

    parsed = ApiClient().deserialize(Response(), "V2beta1RecurringRun")
    assert parsed.trigger.cron_schedule.cron == "0 0 3 * * 1"  # KFP's cron starts with seconds
    assert parsed.max_concurrency == "1" and parsed.no_catchup is True and parsed.mode == "ENABLE"
    assert parsed.runtime_config.pipeline_root == "/gcs/b/digits/tfx"
    assert parsed.pipeline_spec == job["pipelineSpec"]


def test_a_failed_scheduled_run_prints_its_summary_and_errors_for_cron_to_mail(spec, tmp_path):
    fake = tmp_path / "failing-imagepipe"
    fake.write_text('#!/bin/sh\necho "progress line" >&2\necho "boom: out of disk" >&2\n'
                    'echo "{\\"status\\": \\"failed\\"}"\nexit 1\n')
    fake.chmod(0o755)
    command = schedule.crontab_line(spec, "0 3 * * 1", imagepipe=fake).split(" ", 5)[5]
    failed = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True)
    assert failed.returncode == 1
    assert '{"status": "failed"}' in failed.stdout and "boom: out of disk" in failed.stdout
    assert "boom: out of disk" in (spec.output_dir / "logs" / "schedule.stderr.log").read_text()
