"""notify.webhook: the JSON summary is POSTed on every outcome, to a local HTTP server here."""
import contextlib
import fcntl
import http.server
import json
import subprocess
import sys
import threading

import pytest
import yaml

from imagepipe import results
from imagepipe.notify import post_summary
from imagepipe.spec import SpecError, load_spec
from tests.conftest import REPO, encode, gradient


@contextlib.contextmanager
def local_webhook(statuses=None):
    """An HTTP server on 127.0.0.1 that records the JSON bodies POSTed to it."""
    received, statuses = [], statuses if statuses is not None else [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            assert self.headers["Content-Type"] == "application/json"
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(statuses[0])
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()


@pytest.fixture
def webhook():
    statuses = [200]
    with local_webhook(statuses) as (url, received):
        yield url, received, statuses


@pytest.mark.parametrize("status", ["pushed", "not_blessed", "failed"])
def test_each_outcome_is_posted_as_json(webhook, status):
    url, received, _ = webhook
    assert post_summary(url, {"pipeline": "digits", "status": status}) is None
    assert received == [{"pipeline": "digits", "status": status}]


def test_an_unreachable_or_failing_webhook_is_reported_not_raised(webhook):
    url, _, statuses = webhook
    statuses[0] = 500
    assert "500" in post_summary(url, {"status": "pushed"})
    assert "URLError" in post_summary("http://127.0.0.1:9/nothing-listens", {"status": "pushed"}, timeout_seconds=2)


def test_a_refused_run_notifies_and_keeps_its_exit_code(webhook, tmp_path):
    url, received, _ = webhook
    for digit in ("0", "1"):  # a classifier needs two classes
        (tmp_path / "data" / digit).mkdir(parents=True)
        (tmp_path / "data" / digit / "a.png").write_bytes(encode(gradient(8, 8, 1), "PNG"))
    spec = yaml.safe_load((REPO / "pipelines" / "digits.yaml").read_text())
    spec.update(output_dir=str(tmp_path / "outputs"), notify={"webhook": url})
    spec["data"]["root"] = str(tmp_path / "data")
    spec_path = tmp_path / "digits.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    output_dir = load_spec(spec_path).output_dir
    output_dir.mkdir(parents=True)
    with open(output_dir / ".run.lock", "w") as lock:  # another run is in progress
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run([sys.executable, "-m", "imagepipe.cli", "run", str(spec_path)], cwd=REPO,
                                capture_output=True, text=True, timeout=300)
    assert result.returncode == results.EXIT_FAILED
    assert [body["status"] for body in received] == ["busy"]


def test_a_webhook_must_be_an_http_url(tmp_path):
    spec = yaml.safe_load((REPO / "pipelines" / "digits.yaml").read_text())
    spec["notify"] = {"webhook": "file:///etc/passwd"}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match="notify.webhook.*not an http"):
        load_spec(path, check_paths=False)
