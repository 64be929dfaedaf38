"""serving/models.config: a push becomes canary, promote makes it stable, rollback steps stable back."""
import pytest
from click.testing import CliRunner
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components import serving_rollout
from pipelines.cli import main


def push(serving_dir, version):
    """What the ServingPusher does: a whole version directory, then the config."""
    version_dir = serving_dir / "digits" / str(version)
    version_dir.mkdir(parents=True)
    (version_dir / "saved_model.pb").write_bytes(b"pb")
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
    assert sorted(p.name for p in serving.iterdir()) == ["digits", "models.config"]  # no temporary file left


def test_rollback_skips_half_written_versions(tmp_path):
    serving = tmp_path / "serving"
    push(serving, 1)
    (serving / "digits" / "2").mkdir()  # no saved_model.pb: never a rollback target
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
