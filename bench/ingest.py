"""Benchmark: ingesting a folder of JPEGs into TFRecords, side by side.

  python bench/ingest.py [images] [repeats]   (default 20,000 and 3; writes bench/results/ingest.json)

On one generated folder of ~320x240 photographic JPEGs (random crops, flips
and colour shifts of scikit-learn's two sample photos, 10 class folders):
  1. decode limit: JPEGs one core decodes in full per second (PIL; and
     tf.io.decode_jpeg, as the codelab does). ImageExampleGen checks JPEGs by
     a 1/8-scale decode, which flags the same files (tests/components/
     test_hardening.py), so it can beat this limit;
  2. the flowers codelab's way: one process, a tf.data map that reads, decodes
     and resizes, a Python loop writing 16 shards with TFRecordWriter;
  3. ImageExampleGen -> StatisticsGen in a TFX pipeline, on the local runner
     (Beam in-process, one worker) and on the beam runner (DirectRunner, one
     worker process per core). Each runs on a 10% subset and on the full folder:
     the difference gives start-up and steady-state throughput separately.
Machine CPU use and the peak resident memory of this process and its Beam
workers are sampled during every component (bench/measure.py), so "uses both
cores" and "memory does not grow with the images" are measured, not claimed.
Every measurement is repeated (3 times by default) and the median reported,
all passes kept in the JSON: these 2-core machines vary by 15% between passes.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from measure import Sampler, write_result  # noqa: E402

CLASSES = 10
SIZE = (320, 240)


def _write_images(args):
    out_dir, indices, seed = args
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(image) for image in load_sample_images().images]
    rng = random.Random(seed)
    for index in indices:
        photo = photos[index % len(photos)]
        scale = rng.uniform(0.4, 1.0)
        width, height = int(photo.width * scale), int(photo.height * scale)
        left, top = rng.randint(0, photo.width - width), rng.randint(0, photo.height - height)
        image = photo.crop((left, top, left + width, top + height)).resize(SIZE, Image.BILINEAR)
        if rng.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        shift = np.array([rng.randint(-30, 30) for _ in range(3)], dtype=np.int16)
        pixels = np.clip(np.asarray(image, dtype=np.int16) + shift, 0, 255).astype(np.uint8)
        folder = out_dir / f"class_{index % CLASSES}"
        Image.fromarray(pixels).save(folder / f"img_{index:06d}.jpg", quality=90)


def jpeg_folder(count: int) -> Path:
    """data/bench-jpegs-<count>/class_<k>/img_<n>.jpg, generated once (data/ is git-ignored)."""
    root = REPO / "data" / f"bench-jpegs-{count}"
    if root.is_dir() and sum(1 for _ in root.glob("*/*.jpg")) == count:
        return root
    shutil.rmtree(root, ignore_errors=True)
    for k in range(CLASSES):
        (root / f"class_{k}").mkdir(parents=True)
    workers = os.cpu_count() or 1
    chunks = [(root, range(i, count, workers), i) for i in range(workers)]
    with multiprocessing.Pool(workers) as pool:
        pool.map(_write_images, chunks)
    return root


def subset_folder(root: Path, fraction: float, work: Path) -> Path:
    """A folder of symlinks to every n-th image."""
    out = work / f"subset-{fraction}"
    step = round(1 / fraction)
    for path in sorted(root.glob("*/*.jpg"))[::step]:
        (out / path.parent.name).mkdir(parents=True, exist_ok=True)
        (out / path.parent.name / path.name).symlink_to(path)
    return out


def decode_limit(root: Path, sample: int = 2000) -> dict:
    """Images per second on one core."""
    import tensorflow as tf

    files = sorted(root.glob("*/*.jpg"))[:sample]
    blobs = [f.read_bytes() for f in files]
    import io

    start = time.perf_counter()
    for blob in blobs:
        with Image.open(io.BytesIO(blob)) as image:
            image.load()
    pil = len(blobs) / (time.perf_counter() - start)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    start = time.perf_counter()
    for blob in blobs:
        tf.io.decode_jpeg(blob)
    tf_decode = len(blobs) / (time.perf_counter() - start)
    return {"pil_images_per_second_per_core": round(pil, 1), "tf_images_per_second_per_core": round(tf_decode, 1),
            "sample": len(blobs), "mean_file_bytes": int(statistics.mean(len(b) for b in blobs))}


def codelab_loop(root: Path, out_dir: Path, shards: int = 16) -> dict:
    """The flowers codelab's ingestion: tf.data read/decode/resize, Python loop writing shards."""
    import tensorflow as tf

    files = sorted(str(p) for p in root.glob("*/*.jpg"))
    classes = sorted(p.name for p in root.iterdir())

    def decode(path):
        image = tf.image.resize(tf.io.decode_jpeg(tf.io.read_file(path), channels=3), (SIZE[1], SIZE[0]))
        label = tf.strings.split(path, "/")[-2]
        return tf.io.encode_jpeg(tf.cast(image, tf.uint8), quality=95), label

    dataset = tf.data.Dataset.from_tensor_slices(files).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_shard = -(-len(files) // shards)
    start = time.perf_counter()
    writer, written = None, 0
    for image, label in dataset.as_numpy_iterator():
        if written % per_shard == 0:
            if writer:
                writer.close()
            writer = tf.io.TFRecordWriter(str(out_dir / f"{written // per_shard:02d}-{len(files)}.tfrec"))
        example = tf.train.Example(features=tf.train.Features(feature={
            "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
            "class": tf.train.Feature(int64_list=tf.train.Int64List(value=[classes.index(label.decode())])),
        }))
        writer.write(example.SerializeToString())
        written += 1
    writer.close()
    seconds = time.perf_counter() - start
    return {"images": written, "seconds": round(seconds, 2), "images_per_second": round(written / seconds, 1)}


def tfx_ingest(root: Path, work: Path, runner: str, sampler: Sampler) -> dict:
    """ImageExampleGen -> StatisticsGen; per-component seconds from ML Metadata."""
    from tfx import v1 as tfx
    from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

    from components.image_example_gen import ImageExampleGen

    name = f"ingest-{runner}-{root.name}"
    example_gen = ImageExampleGen(input_base=str(root), input_pattern="*/*", train_buckets=4, eval_buckets=1)
    # As the pipeline runs it (imagepipe/pipeline.py): StatisticsGen reads the imported schema.
    schema_gen = tfx.components.ImportSchemaGen(schema_file=str(REPO / "schemas" / "image_examples.pbtxt"))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"],
                                                  schema=schema_gen.outputs["schema"])
    workers = os.cpu_count() or 1
    args = (["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"] if runner == "beam"
            else ["--direct_num_workers=1"])
    metadata_path = work / f"{name}.sqlite"
    pipeline = tfx.dsl.Pipeline(
        pipeline_name=name, pipeline_root=str(work / name), components=[example_gen, schema_gen, statistics_gen],
        enable_cache=False, beam_pipeline_args=args,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(str(metadata_path)))
    start = time.time()
    (BeamDagRunner() if runner == "beam" else tfx.orchestration.LocalDagRunner()).run(pipeline)
    total = time.time() - start

    from ml_metadata.metadata_store import metadata_store

    store = metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(str(metadata_path)))
    images = sum(1 for _ in root.glob("*/*.jpg"))
    components = {}
    for execution in store.get_executions():
        component = execution.type.rsplit(".", 1)[-1]
        if component == "ImportSchemaGen":  # reads one file: nothing to measure
            continue
        began, ended = execution.create_time_since_epoch / 1000, execution.last_update_time_since_epoch / 1000
        components[component] = {"seconds": round(ended - began, 2), "cpu_use_of_all_cores": sampler.mean_cpu_between(began, ended),
                                  # this process and its Beam workers; includes TensorFlow's own ~0.5 GB
                                  "peak_rss_mb": sampler.peak_rss_mb_between(began, ended)}
    examples_dir = next((work / name).glob("ImageExampleGen/examples/*"))
    shards = [p.stat().st_size for p in examples_dir.glob("Split-*/*.gz")]
    return {"images": images, "pipeline_seconds": round(total, 2), "components": components,
            "shards": len(shards), "mean_shard_mb": round(statistics.mean(shards) / 1e6, 2) if shards else 0}


def median_ingest(runs: list[dict]) -> dict:
    """The median pass of tfx_ingest, component by component; every pass's seconds kept."""
    merged = {"images": runs[0]["images"], "pipeline_seconds": statistics.median(r["pipeline_seconds"] for r in runs),
              "shards": runs[0]["shards"], "mean_shard_mb": runs[0]["mean_shard_mb"], "components": {}}
    for component in runs[0]["components"]:
        passes = [r["components"][component] for r in runs]
        merged["components"][component] = {
            key: round(statistics.median(p[key] for p in passes), 3) for key in passes[0]}
        merged["components"][component]["seconds_each_pass"] = [p["seconds"] for p in passes]
    return merged


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    started = time.perf_counter()
    root = jpeg_folder(count)
    print(f"{count} JPEGs in {root} ({time.perf_counter() - started:.0f} s)", flush=True)
    work = Path(tempfile.mkdtemp(prefix="imagepipe-ingest-"))
    result = {"benchmark": "ingest", "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "images": count, "image_size": list(SIZE), "repeats": repeats}
    try:
        limits = [decode_limit(root) for _ in range(repeats)]
        result["decode_limit"] = {key: statistics.median(limit[key] for limit in limits) for key in limits[0]}
        result["decode_limit"]["pil_each_pass"] = [limit["pil_images_per_second_per_core"] for limit in limits]
        print("decode limit", result["decode_limit"], flush=True)
        small = subset_folder(root, 0.1, work)
        with Sampler() as sampler:
            codelab = []
            for repeat in range(repeats):
                start = time.time()
                codelab.append(codelab_loop(root, work / f"codelab{repeat}"))
                codelab[-1]["cpu_use_of_all_cores"] = sampler.mean_cpu_between(start, time.time())
                shutil.rmtree(work / f"codelab{repeat}")
            result["codelab_loop"] = {key: statistics.median(run[key] for run in codelab) for key in codelab[0]}
            result["codelab_loop"]["images_per_second_each_pass"] = [run["images_per_second"] for run in codelab]
            print("codelab", result["codelab_loop"], flush=True)
            for runner in ("local", "beam"):
                runs = {size: [] for size in ("subset", "full")}
                for _ in range(repeats):  # interleaved, so that a slow spell of the machine hits both sizes
                    for size, folder in (("subset", small), ("full", root)):
                        runs[size].append(tfx_ingest(folder, work, runner, sampler))
                        shutil.rmtree(work / f"ingest-{runner}-{folder.name}")  # and its metadata: one run per store
                        (work / f"ingest-{runner}-{folder.name}.sqlite").unlink()
                result[f"tfx_{runner}"] = {size: median_ingest(passes) for size, passes in runs.items()}
                print(runner, result[f"tfx_{runner}"], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    for runner in ("local", "beam"):
        full, subset = result[f"tfx_{runner}"]["full"], result[f"tfx_{runner}"]["subset"]
        for component in ("ImageExampleGen", "StatisticsGen"):
            slope = (full["components"][component]["seconds"] - subset["components"][component]["seconds"]) / (
                full["images"] - subset["images"])
            startup = subset["components"][component]["seconds"] - slope * subset["images"]
            full["components"][component].update(
                steady_images_per_second=round(1 / slope, 1) if slope > 0 else None,
                startup_seconds=round(startup, 2),
                images_per_second=round(full["images"] / full["components"][component]["seconds"], 1),
            )
    beam_gen = result["tfx_beam"]["full"]["components"]["ImageExampleGen"]
    local_gen = result["tfx_local"]["full"]["components"]["ImageExampleGen"]
    limit = result["decode_limit"]["pil_images_per_second_per_core"] * (os.cpu_count() or 1)
    codelab_rate = result["codelab_loop"]["images_per_second"]
    result["summary"] = {
        "beam_vs_local_example_gen": round(beam_gen["images_per_second"] / local_gen["images_per_second"], 2),
        # Whole component, worker start-up included.
        "beam_vs_codelab": round(beam_gen["images_per_second"] / codelab_rate, 2),
        # The codelab loop's passes are bimodal here (tf.data's autotuner uses one core or both): its best pass.
        "beam_vs_codelab_fastest": round(beam_gen["images_per_second"]
                                         / max(result["codelab_loop"]["images_per_second_each_pass"]), 2),
        # Throughput once the workers run: the codelab loop has no start-up to speak of.
        "beam_steady_vs_codelab": round((beam_gen["steady_images_per_second"] or 0) / codelab_rate, 2),
        "beam_steady_vs_decode_limit_x_cores": round((beam_gen["steady_images_per_second"] or 0) / limit, 2),
        # Streaming, not loading: peak memory at 20,000 images vs. at 2,000 (1.0 = no growth).
        "example_gen_peak_rss_full_vs_subset": {
            runner: round(result[f"tfx_{runner}"]["full"]["components"]["ImageExampleGen"]["peak_rss_mb"]
                          / result[f"tfx_{runner}"]["subset"]["components"]["ImageExampleGen"]["peak_rss_mb"], 2)
            for runner in ("local", "beam")},
        # Issue 22: against the codelab's fastest pass, and 0.8 (0.6 before) of what the cores can decode.
        "targets": {"beam_vs_codelab": 1.5, "beam_vs_codelab_fastest": 1.5, "beam_steady_vs_decode_limit_x_cores": 0.8},
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_result("ingest", result)
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
