"""`runner: portable`: every component's Beam job goes through a Beam Job API endpoint, its SDK workers
in a separate worker pool: the path Flink, Spark and Dataflow Runner v2 take. Here both are Beam's own
services on 127.0.0.1, started and stopped by the test; the Job API then tells which jobs it ran."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import yaml
from apache_beam.portability.api import beam_job_api_pb2, beam_job_api_pb2_grpc

from imagepipe.datasets import write_digits
from tests.conftest import REPO, imagepipe

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# A top-level transform that only one component's Beam job has: how a job is traced to its component.
SIGNATURES = {"ImageExampleGen": "InputToRecord", "StatisticsGen": "GenerateStatistics",
              "Transform": "WriteTransformFn", "Evaluator": "ExtractEvaluateAndWriteResults"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(port: int, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args} exited with {process.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"nothing listens on {port} after {seconds} s: {log.read_text()[-2000:]}")


@pytest.fixture
def beam_services(tmp_path):
    """Beam's job service and an SDK worker pool, as a cluster's would be; the pool's workers start this
    project's Python (its bin first on PATH), as a cluster's SDK image would have the project installed."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    job_port, pool_port = free_port(), free_port()
    commands = {
        "job_service": ([sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                         "--port", str(job_port)], job_port),
        "worker_pool": ([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                         f"--service_port={pool_port}"], pool_port),
    }
    started = []
    try:
        for name, (command, port) in commands.items():
            log = tmp_path / f"{name}.log"
            process = subprocess.Popen(command, cwd=REPO, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
            started.append(process)
            wait_for(port, process, log)
        yield {"job_endpoint": f"localhost:{job_port}", "environment_config": f"localhost:{pool_port}",
               "worker_pool_log": tmp_path / "worker_pool.log"}
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def jobs_run_by(job_endpoint: str):
    """(state, every transform's name) of each job the job service ran."""
    stub = beam_job_api_pb2_grpc.JobServiceStub(grpc.insecure_channel(job_endpoint))
    jobs = []
    for job in stub.GetJobs(beam_job_api_pb2.GetJobsRequest(), timeout=30).job_info:
        pipeline = stub.GetPipeline(beam_job_api_pb2.GetJobPipelineRequest(job_id=job.job_id), timeout=30).pipeline
        names = " ".join(transform.unique_name for transform in pipeline.components.transforms.values())
        jobs.append((beam_job_api_pb2.JobState.Enum.Name(job.state), names))
    return jobs


def test_the_digits_pipeline_runs_with_every_beam_job_on_the_job_service_and_the_worker_pool(tmp_path, beam_services):
    write_digits(tmp_path / "data", per_class=30)
    spec = yaml.safe_load((REPO / "pipelines" / "digits.yaml").read_text())
    spec.update(pipeline="digits-portable", output_dir=str(tmp_path / "outputs"))
    spec["data"]["root"] = str(tmp_path / "data")
    spec["trainer"]["epochs"] = 2
    # Orchestration, not accuracy, is under test here.
    spec["evaluation"] = {"min_accuracy": 0.0, "max_accuracy_drop": 1.0}
    del spec["push"]["edge"]  # the EdgePusher runs no Beam job
    spec["beam"] = {"job_endpoint": beam_services["job_endpoint"], "environment_type": "EXTERNAL",
                    "environment_config": beam_services["environment_config"]}
    spec_path = tmp_path / "digits-portable.yaml"
    spec_path.write_text(yaml.safe_dump(spec))

    result = imagepipe("run", str(spec_path), "--runner", "portable", "--json")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "pushed" and outcome["files_ingested"] == 300, outcome

    jobs = jobs_run_by(beam_services["job_endpoint"])
    assert all(state == "DONE" for state, _ in jobs), jobs
    traced = {component for component, signature in SIGNATURES.items()
              if any(signature in names for _, names in jobs)}
    # Every Beam-using component's job went through the service.
    assert traced == set(SIGNATURES), [(state, sorted({name.split("/")[0] for name in names.split()})) for state, names in jobs]
    # ... and its SDK workers came from the pool, not from the launcher.
    assert beam_services["worker_pool_log"].read_text().count("Starting worker") >= len(SIGNATURES), \
        beam_services["worker_pool_log"].read_text()[-2000:]


def test_runner_portable_without_a_job_endpoint_is_refused_with_the_fix(tmp_path):
    spec = yaml.safe_load((REPO / "pipelines" / "sine.yaml").read_text())
    spec["output_dir"] = str(tmp_path / "outputs")
    spec_path = tmp_path / "sine.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    result = imagepipe("run", str(spec_path), "--runner", "portable")
    assert result.returncode == 2, result.stderr
    assert "needs beam.job_endpoint; fix: set it to the job server's host:port" in result.stderr
