"""Benchmark: Fashion-MNIST's whole train split (60,000 images) vs. a tenth of it (6,000), on both runners.

  python bench/scale.py [runner ...]   (writes bench/results/scale.json; about 8 minutes here)
  (default both runners; naming one re-measures it and keeps the other's runs from the file)

Each (runner, size) runs pipelines/fashion.yaml's stages up to the Trainer (ImageExampleGen, the imported
schema, StatisticsGen, ExampleValidator, Transform, Trainer with `trainer.epochs: 1`) in a fresh process, built
by the code `imagepipe run` uses (imagepipe.pipeline.create_pipeline; imagepipe.run's Beam arguments and DAG
runner). The Evaluator and the pushers are left out: they read the eval split and the model, not the train split.
Every image is read once before each run (the page cache then holds them for both sizes; the read's seconds
are kept). Per component: seconds (from ML Metadata) and the peak resident memory of that process and its Beam workers
(bench/measure.py's Sampler, every 0.25 s). Issue 21's expectation: time grows linearly with the images (a 60k/6k
ratio of 10 or less, start-up making it less) and memory stays flat (a ratio near 1).

The 6,000 images are the first 600 of each class (`imagepipe data fashion-mnist --per-class 600`).
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from measure import RESULTS, Sampler, short_commit, write_result  # noqa: E402

SIZES = {"6000": 600, "60000": None}  # images -> per class
STAGES = ("ImageExampleGen", "SchemaGen", "StatisticsGen", "ExampleValidator", "Transform",
          "warm_start_model_resolver", "Trainer")


def data_folder(images: str) -> Path:
    """data/fashion-mnist (all 60,000) or data/fashion-mnist-6000, written once (data/ is git-ignored)."""
    per_class = SIZES[images]
    root = REPO / "data" / ("fashion-mnist" if per_class is None else f"fashion-mnist-{images}")
    if sum(1 for _ in root.glob("*/*.png")) != int(images):
        command = [sys.executable, "-m", "imagepipe.cli", "data", "fashion-mnist", "--out", str(root)]
        subprocess.run(command + ([] if per_class is None else ["--per-class", str(per_class)]), cwd=REPO, check=True)
    return root


def run_stages(runner: str, data_root: str, work: str) -> None:
    """In the child process: the spec's stages up to the Trainer, one epoch."""
    from tfx.orchestration import pipeline as tfx_pipeline

    from imagepipe.pipeline import create_pipeline
    from imagepipe.run import beam_pipeline_args, dag_runner, schema_file
    from imagepipe.spec import load_spec

    raw = yaml.safe_load((REPO / "pipelines" / "fashion.yaml").read_text())
    raw["data"]["root"] = data_root
    raw["output_dir"] = work
    raw["trainer"]["epochs"] = 1
    raw["push"] = {"serving": True}  # (left out below with the Evaluator)
    spec_path = Path(work) / "fashion-scale.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    loaded = load_spec(spec_path)
    layout = loaded.layout
    full = create_pipeline(spec=loaded.spec, pipeline_root=layout.pipeline_root, metadata_path=layout.metadata_path,
                           data_root=str(loaded.data_root), schema_file=str(schema_file(loaded)),
                           serving_base_dir=layout.serving_base_dir, edge_base_dir=layout.edge_base_dir,
                           beam_pipeline_args=beam_pipeline_args(loaded, runner))
    stages = [c for c in full.components if c.id in STAGES]
    for component in stages:  # the left-out Evaluator and resolver hang off the Trainer
        for node in [n for n in component.downstream_nodes if n not in stages]:
            component.remove_downstream_node(node)
    pipeline = tfx_pipeline.Pipeline(pipeline_name=full.pipeline_info.pipeline_name,
                                     pipeline_root=layout.pipeline_root, components=stages, enable_cache=False,
                                     metadata_connection_config=full.metadata_connection_config,
                                     beam_pipeline_args=full.beam_pipeline_args)
    dag_runner(runner).run(pipeline)


def read_all(data_root: Path) -> float:
    """Reads every image once, so that both sizes start with their files in the page cache (this VM pages
    idle memory out: a folder written in an earlier session is read from disk); returns the seconds taken."""
    started = time.perf_counter()
    for path in data_root.glob("*/*.png"):
        path.read_bytes()
    return round(time.perf_counter() - started, 2)


def measure(runner: str, images: str, work: Path) -> dict:
    data_root = data_folder(images)
    read_seconds = read_all(data_root)
    started = time.time()
    child = subprocess.Popen([sys.executable, __file__, "--stages", runner, str(data_root), str(work)], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=open(work / "log.txt", "w"))
    with Sampler(pid=child.pid) as sampler:
        code = child.wait()
    total = time.time() - started
    if code:
        raise RuntimeError(f"{runner}, {images} images: the stages exited with {code}; log: {work / 'log.txt'}")

    from ml_metadata.metadata_store import metadata_store
    from tfx.orchestration import metadata

    store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(
        str(work / "fashion" / "metadata.sqlite")))
    components = {}
    for execution in store.get_executions():
        name = execution.type.rsplit(".", 1)[-1]
        began, ended = execution.create_time_since_epoch / 1000, execution.last_update_time_since_epoch / 1000
        if name in ("ImportSchemaGen", "Resolver"):  # read one file; look up ML Metadata
            continue
        components[name] = {"seconds": round(ended - began, 2), "peak_rss_mb": sampler.peak_rss_mb_between(began, ended),
                            "cpu_use_of_all_cores": sampler.mean_cpu_between(began, ended)}
    return {"images": int(images), "commit": short_commit(), "date": time.strftime("%Y-%m-%d"),
            "read_all_first_seconds": read_seconds, "seconds": round(total, 1), "peak_rss_mb": sampler.peak_rss_mb_between(),
            "components": components}


def main(runners: list[str]) -> None:
    started = time.perf_counter()
    result = {"benchmark": "scale", "spec": "pipelines/fashion.yaml", "trainer_epochs": 1, "runs": {}}
    previous = RESULTS / "scale.json"
    if runners and previous.exists():
        result["runs"] = json.loads(previous.read_text())["runs"]
    for runner in runners or ("local", "beam"):
        result["runs"][runner] = {}
        for images in SIZES:
            with tempfile.TemporaryDirectory(prefix="imagepipe-scale-") as work:
                print(f"== {runner}, {images} images", flush=True)
                run = measure(runner, images, Path(work))
                result["runs"][runner][images] = run
                print(json.dumps(run), flush=True)
    ratios = {}
    for runner, runs in result["runs"].items():
        small, large = runs["6000"], runs["60000"]
        ratios[runner] = {name: {key: round(large["components"][name][key] / small["components"][name][key], 2)
                                 for key in ("seconds", "peak_rss_mb")}
                          for name in ("ImageExampleGen", "StatisticsGen", "Transform", "Trainer")}
    result["large_vs_small"] = ratios
    result["bench_seconds"] = round(time.perf_counter() - started, 1)
    write_result("scale", result)
    print(json.dumps(ratios, indent=2))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--stages"]:
        run_stages(*sys.argv[2:5])
    else:
        main(sys.argv[1:])
