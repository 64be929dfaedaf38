"""serving/models.config: a push becomes canary, promote makes it stable, rollback steps stable back."""
import pytest
from click.testing import CliRunner
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components import serving_rollout
from components.contracts import SERVING_PUSH_RECORD
from imagepipe.cli import main


def push(serving_dir, version):
    """What the ServingPusher does: a whole version directory, then the config."""
    version_dir = serving_dir / "digits" / str(version)
    (version_dir / "assets.extra").mkdir(parents=True)
    (version_dir / "saved_model.pb").write_bytes(b"pb")
    (version_dir / SERVING_PUSH_RECORD).write_text('{"model_uri": "m%d"}' % version)
    return serving_rollout.record_push(serving_dir, "digits", version)


def parsed(serving_dir):
    """Strict parse with TF Serving's own protos: what the server reads."""
    text = (serving_dir / "models.config").read_text()
    model = text_format.Parse(text, model_server_config_pb2.ModelServerConfig()).model_config_list.config[0]
    return dict(model.version_labels), list(model.model_version_policy.specific.versions), model


def test_push_promote_push_rollback(tmp_path):
    serving = tmp_path / "serving"
    push(serving, 1)
    labels, versions, model = parsed(serving)
    assert labels == {"stable": 1, "canary": 1} and versions == [1]
    assert model.name == "digits" and model.base_path == str((serving / "digits").resolve())

    push(serving, 2)
    assert parsed(serving)[:2] == ({"stable": 1, "canary": 2}, [1, 2])
    serving_rollout.promote(serving)
    assert parsed(serving)[:2] == ({"stable": 2, "canary": 2}, [2])

    push(serving, 3)
    assert parsed(serving)[:2] == ({"stable": 2, "canary": 3}, [2, 3])
    serving_rollout.rollback(serving)
    assert parsed(serving)[:2] == ({"stable": 1, "canary": 1}, [1])
    # No temporary file left (the lock file stays: flock needs a file).
    assert sorted(p.name for p in serving.iterdir()) == [serving_rollout.LOCK_NAME, "digits", "models.config"]


def test_rollback_skips_half_written_versions(tmp_path):
    serving = tmp_path / "serving"
    push(serving, 1)
    (serving / "digits" / "2").mkdir()  # no push record: never a rollback target
    push(serving, 3)
    serving_rollout.promote(serving)
    assert serving_rollout.rollback(serving).stable == 1


def test_refusals_say_why(tmp_path):
    serving = tmp_path / "serving"
    with pytest.raises(serving_rollout.RolloutError, match="nothing has been pushed"):
        serving_rollout.promote(serving)
    push(serving, 1)
    with pytest.raises(serving_rollout.RolloutError, match="already stable"):
        serving_rollout.promote(serving)
    with pytest.raises(serving_rollout.RolloutError, match="nothing to roll back to"):
        serving_rollout.rollback(serving)


def test_cli_promote_rollback_and_show(tmp_path):
    outputs = tmp_path / "outputs"
    serving = outputs / "digits" / "serving"
    push(serving, 1)
    push(serving, 2)
    runner = CliRunner()
    shown = runner.invoke(main, ["serving", "digits", "--output-dir", str(outputs)])
    assert shown.exit_code == 0 and "versions [1, 2], stable 1, canary 2" in shown.output
    promoted = runner.invoke(main, ["promote", "digits", "--output-dir", str(outputs)])
    assert promoted.exit_code == 0 and "stable 2, canary 2" in promoted.output
    rolled = runner.invoke(main, ["rollback", "digits", "--output-dir", str(outputs)])
    assert rolled.exit_code == 0 and "stable 1, canary 1" in rolled.output
    refused = runner.invoke(main, ["rollback", "digits", "--output-dir", str(outputs)])
    assert refused.exit_code == 1
    assert runner.invoke(main, ["promote", "../etc", "--output-dir", str(outputs)]).exit_code == 2


def test_after_a_rollback_a_newer_version_can_be_promoted_again(tmp_path):
    serving = tmp_path / "serving"
    push(serving, 1)
    push(serving, 2)
    serving_rollout.promote(serving)
    serving_rollout.rollback(serving)
    assert parsed(serving)[0] == {"stable": 1, "canary": 1}
    assert serving_rollout.promote(serving).stable == 2  # default: the newest push
    serving_rollout.rollback(serving)
    assert serving_rollout.promote(serving, version=2).stable == 2
    with pytest.raises(serving_rollout.RolloutError, match=r"version 7 is not a pushed version .*pushed: 1, 2"):
        serving_rollout.promote(serving, version=7)


def test_a_push_recorded_again_repairs_a_missing_label_and_changes_nothing_else(tmp_path):
    serving = tmp_path / "serving"
    push(serving, 1)
    (serving / "digits" / "2" / "assets.extra").mkdir(parents=True)  # a run stopped before models.config:
    (serving / "digits" / "2" / "saved_model.pb").write_bytes(b"pb")
    (serving / "digits" / "2" / SERVING_PUSH_RECORD).write_text("{}")
    assert parsed(serving)[0] == {"stable": 1, "canary": 1}
    serving_rollout.record_push(serving, "digits", 2)  # what the re-run's Pusher does
    assert parsed(serving)[0] == {"stable": 1, "canary": 2}
    serving_rollout.record_push(serving, "digits", 2)
    serving_rollout.record_push(serving, "digits", 1)  # an older push re-recorded moves nothing back
    assert parsed(serving)[0] == {"stable": 1, "canary": 2}


def test_an_unreadable_models_config_is_set_aside_by_a_push_and_reported_by_the_commands(tmp_path):
    outputs = tmp_path / "outputs"
    serving = outputs / "digits" / "serving"
    push(serving, 1)
    (serving / "models.config").write_bytes(b"\xff garbage {{{")
    runner = CliRunner()
    for command in (["serving", "digits"], ["promote", "digits"], ["rollback", "digits"]):
        result = runner.invoke(main, [*command, "--output-dir", str(outputs)])
        assert result.exit_code == 1 and "not a TF Serving model config" in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    push(serving, 2)
    assert parsed(serving)[0] == {"stable": 2, "canary": 2}
    assert len(list(serving.glob("models.config.unreadable-*"))) == 1


def test_promote_waits_for_a_push_in_progress(tmp_path):
    import fcntl
    import threading
    import time

    serving = tmp_path / "serving"
    push(serving, 1)
    push(serving, 2)
    with open(serving / serving_rollout.LOCK_NAME, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # a push is writing models.config
        done = []
        worker = threading.Thread(target=lambda: done.append(serving_rollout.promote(serving)))
        worker.start()
        time.sleep(0.5)
        assert not done  # promote waits instead of reading a config about to change
        fcntl.flock(handle, fcntl.LOCK_UN)
        worker.join(10)
    assert done and done[0].stable == 2


def test_cli_promote_takes_a_version(tmp_path):
    outputs = tmp_path / "outputs"
    serving = outputs / "digits" / "serving"
    for version in (1, 2, 3):
        push(serving, version)
    result = CliRunner().invoke(main, ["promote", "digits", "--version", "2", "--output-dir", str(outputs)])
    assert result.exit_code == 0 and "stable 2, canary 2" in result.output


def test_an_empty_models_config_and_an_unwritable_serving_folder_are_errors_with_the_fix(tmp_path, monkeypatch):
    serving = tmp_path / "serving"
    push(serving, 1)
    (serving / "models.config").write_text("")
    with pytest.raises(serving_rollout.RolloutError, match="not a TF Serving model config"):
        serving_rollout.read(serving)
    push(serving, 2)  # the push sets the empty file aside and writes a whole one
    assert parsed(serving)[0] == {"stable": 2, "canary": 2}

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", refuse)  # a read-only output directory
    with pytest.raises(serving_rollout.RolloutError, match="cannot write here .*fix: check the output directory"):
        serving_rollout.promote(serving, version=1)
