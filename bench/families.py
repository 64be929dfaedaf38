"""Benchmark: every model family through the real pipeline, on the embedded digits and on Fashion-MNIST.

  python bench/families.py [spec ...]             the digits: families.json's "runs"
  python bench/families.py --fashion [spec ...]   Fashion-MNIST: families.json's "fashion-mnist"

Digits: for each `pipelines/digits-<family>.yaml` (and `digits.yaml` for convnet), in
a scratch output folder: parameters, epochs run, Trainer seconds (from MLMD),
eval accuracy (TFMA), SavedModel size. `mobilenet_transfer` runs with
`weights: none` unless ~/.keras/models holds the ImageNet weights (no
download on machines without internet).

Fashion-MNIST, every family on the same budget: the same 6,000 images (the first 600 of each class of the
train split; 80% train, 20% eval by the spec's hash), `pipelines/fashion.yaml`'s image settings, augmentation
and batch size, FASHION_EPOCHS epochs; each family keeps its digits spec's model hyperparameters and learning
rate. The bench measures and does not gate: the evaluation threshold and the int8 degradation limit are off
and the edge budgets are large, so every family is pushed and its int8 model measured; whether it fits
fashion.yaml's board (1 MiB flash, 256 KiB arena) is a column. Then the pushed model's `serving_default` on
all 10,000 test images (PNG bytes, as TF Serving receives them), and, on the first INT8_TEST_IMAGES of them,
the int8 model in TFLite Micro beside the float model on the same images.

Writes bench/results/families.json and prints a Markdown table.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
from measure import write_result  # noqa: E402

FASHION_EPOCHS = 10
FASHION_IMAGES_PER_CLASS = 600
INT8_TEST_IMAGES = 2000  # TFLite Micro's reference kernels take ~15 ms an image here
BOARD = {"flash_bytes": 1 << 20, "ram_bytes": 256 << 10}  # pipelines/fashion.yaml's edge budgets
# Fashion-MNIST: fashion.yaml is the convnet's own spec there; the other families come from their digits specs.
FASHION_SPECS = ["fashion.yaml", "digits-dense.yaml", "digits-squeezenet.yaml", "digits-inception.yaml",
                 "digits-alexnet.yaml", "digits-mobilenet-transfer.yaml"]
SPECS = ["digits.yaml", "digits-dense.yaml", "digits-squeezenet.yaml", "digits-inception.yaml",
         "digits-alexnet.yaml", "digits-mobilenet-transfer.yaml"]


def trainer_seconds(metadata_path: Path) -> float:
    from ml_metadata.metadata_store import metadata_store
    from tfx.orchestration import metadata

    store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(str(metadata_path)))
    executions = [e for e in store.get_executions() if store.get_execution_types_by_id([e.type_id])[0].name.endswith("Trainer")]
    latest = max(executions, key=lambda e: e.id)
    return (latest.last_update_time_since_epoch - latest.create_time_since_epoch) / 1000.0


def saved_model_bytes(model_dir: Path) -> int:
    return sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())


def parameter_counts(spec: dict, num_classes: int) -> tuple[int, int]:
    """(all, trainable) parameters of the family's model, rebuilt from the spec."""
    import importlib

    import numpy as np

    family = importlib.import_module(f"trainer_modules.{spec['trainer']['module']}")
    image = spec["image"]
    model = family.build_model((image["height"], image["width"], image["channels"]), num_classes,
                               family.Hyperparameters(**spec["trainer"].get("hyperparameters", {})))
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return model.count_params(), trainable


def imagenet_weights_cached() -> bool:
    return any((Path.home() / ".keras" / "models").glob("mobilenet_v2_weights_*no_top.h5"))


def run_spec(spec: dict, name: str, work: Path) -> tuple[dict, Path]:
    """`imagepipe run` on `spec` in `work`; its row of the table and its output folder."""
    spec["output_dir"] = str(work)
    hp = spec["trainer"].setdefault("hyperparameters", {})
    if spec["trainer"]["module"] == "mobilenet_transfer" and not imagenet_weights_cached():
        hp["weights"] = "none"
    path = work / name
    path.write_text(yaml.safe_dump(spec))
    print(f"== {name}", flush=True)
    result = subprocess.run([sys.executable, "-m", "imagepipe.cli", "run", str(path), "--json"],
                            cwd=REPO, capture_output=True, text=True)
    if result.returncode not in (0, 3):
        print(result.stderr[-2000:], flush=True)
    summary = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else {}
    out = work / spec["pipeline"]
    history_files = sorted((out / "tfx" / "Trainer" / "model_run").glob("*/history.json"))
    epochs = len(json.loads(history_files[-1].read_text())["loss"]) if history_files else None
    models = sorted((out / "tfx" / "Trainer" / "model").glob("*/Format-Serving"))
    size = saved_model_bytes(models[-1]) if models else None
    params, trainable = parameter_counts(spec, num_classes=10)
    row = {
        "spec": f"pipelines/{name}",
        "family": spec["trainer"]["module"],
        "hyperparameters": hp,
        "exit_code": result.returncode,
        "status": summary.get("status"),
        "parameters": params,
        "trainable_parameters": trainable,
        "epochs": epochs,
        "train_seconds": round(trainer_seconds(out / "metadata.sqlite"), 1) if models else None,
        "eval_accuracy": summary.get("accuracy"),
        "saved_model_bytes": size,
        "pushed_version": summary.get("pushed_version"),
        "edge": {k: v for k, v in (summary.get("edge") or {}).items()
                 if k not in ("destination", "checks")} or None,
    }
    return row, out


def digits(only: list[str] | None = None) -> None:
    """`only`: spec file names to re-run; their rows replace the old ones in families.json."""
    data_root = REPO / "data" / "digits"
    if not data_root.is_dir():
        subprocess.run([sys.executable, "-m", "imagepipe.cli", "data", "digits", "--out", str(data_root)], check=True)
    work = Path(tempfile.mkdtemp(prefix="imagepipe-families-"))
    rows = []
    try:
        for name in only or SPECS:
            spec = yaml.safe_load((REPO / "pipelines" / name).read_text())
            spec["data"]["root"] = str(data_root)
            rows.append(run_spec(spec, name, work)[0])
            print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = REPO / "bench" / "results" / "families.json"
    previous = json.loads(results.read_text()) if results.exists() else {}
    if only and previous:
        rerun = {r["spec"] for r in rows}
        kept = [r for r in previous["runs"] if r["spec"] not in rerun]
        rows = sorted(kept + rows, key=lambda r: SPECS.index(r["spec"].split("/")[-1]))
    write_result("families", {"benchmark": "families", "runs": rows,
                              **({"fashion-mnist": previous["fashion-mnist"]} if "fashion-mnist" in previous else {})})
    print("| family | parameters | epochs | train s | eval accuracy | SavedModel MB | status |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        mb = f"{r['saved_model_bytes'] / 1e6:.2f}" if r["saved_model_bytes"] else "-"
        acc = f"{r['eval_accuracy']:.4f}" if r["eval_accuracy"] is not None else "-"
        print(f"| {r['family']} | {r['parameters']:,} | {r['epochs']} | {r['train_seconds']} | {acc} | {mb} | {r['status']} |"
              if r["saved_model_bytes"] else f"| {r['family']} | {r['parameters']:,} | - | - | - | - | failed ({r['exit_code']}) |")


def fashion_spec(family_spec: dict, data_root: Path) -> dict:
    """pipelines/fashion.yaml with the family's model, on the bench's data, measuring instead of gating."""
    spec = yaml.safe_load((REPO / "pipelines" / "fashion.yaml").read_text())
    spec["pipeline"] = f"fashion-{family_spec['trainer']['module'].replace('_', '-')}"
    spec["data"]["root"] = str(data_root)
    spec["trainer"].update(module=family_spec["trainer"]["module"], epochs=FASHION_EPOCHS, early_stopping_patience=0,
                           learning_rate=family_spec["trainer"]["learning_rate"],
                           hyperparameters=family_spec["trainer"].get("hyperparameters", {}))
    spec["evaluation"] = {"min_accuracy": 0.0, "max_accuracy_drop": 1.0}
    spec["push"]["edge"].update(max_int8_degradation=1.0, flash_budget_bytes=1 << 30, ram_budget_bytes=1 << 30)
    return spec


def test_set_accuracy(spec_path: Path) -> dict:
    """The pushed models on the test images: served (all 10,000) and int8 in TFLite Micro beside float (the first
    INT8_TEST_IMAGES)."""
    import fashion_test_set as ts  # imports TensorFlow: only the Fashion-MNIST mode needs it
    import numpy as np

    from components.contracts import SERVING_PUSH_RECORD
    from imagepipe.datasets import fashion_mnist_arrays
    from imagepipe.spec import load_spec

    loaded = load_spec(spec_path, check_paths=False)
    pixels, labels = fashion_mnist_arrays("test")
    images = [ts.png(p) for p in pixels]
    served = ts.newest(Path(loaded.layout.serving_base_dir), SERVING_PUSH_RECORD)
    bundle = ts.newest(Path(loaded.layout.edge_base_dir), "manifest.json")
    first = slice(0, INT8_TEST_IMAGES)
    return {"test_accuracy": ts.served_accuracy(served, images, labels)["test_accuracy"],
            "subset_float_accuracy": ts.served_accuracy(served, images[first], labels[first])["test_accuracy"],
            "subset_int8_accuracy": ts.int8_accuracy(bundle, images[first], np.asarray(labels[first]),
                                                     loaded.spec.image),
            "subset_images": len(images[first])}


def fashion(only: list[str] | None = None) -> None:
    """Every family on Fashion-MNIST on one budget; `only`: family spec file names to re-run."""
    data_root = REPO / "data" / f"fashion-mnist-{10 * FASHION_IMAGES_PER_CLASS}"
    if sum(1 for _ in data_root.glob("*/*.png")) != 10 * FASHION_IMAGES_PER_CLASS:
        subprocess.run([sys.executable, "-m", "imagepipe.cli", "data", "fashion-mnist", "--out", str(data_root),
                        "--per-class", str(FASHION_IMAGES_PER_CLASS)], cwd=REPO, check=True)
    work = Path(tempfile.mkdtemp(prefix="imagepipe-families-fashion-"))
    rows = []
    try:
        for name in only or FASHION_SPECS:
            spec = fashion_spec(yaml.safe_load((REPO / "pipelines" / name).read_text()), data_root)
            row, _ = run_spec(spec, f"{spec['pipeline']}.yaml", work)
            row["spec"] = f"pipelines/{name}" + ("" if name == "fashion.yaml" else " on pipelines/fashion.yaml's settings")
            if row["pushed_version"]:
                row.update(test_set_accuracy(work / f"{spec['pipeline']}.yaml"))
                edge = row["edge"] or {}
                row["fits_board"] = bool(edge.get("int8_model_bytes", 1 << 40) <= BOARD["flash_bytes"]
                                         and edge.get("arena_bytes", 1 << 40) <= BOARD["ram_bytes"])
            rows.append(row)
            print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = REPO / "bench" / "results" / "families.json"
    previous = json.loads(results.read_text()) if results.exists() else {"benchmark": "families", "runs": []}
    if only and "fashion-mnist" in previous:
        rerun = {r["family"] for r in rows}
        rows = [r for r in previous["fashion-mnist"]["runs"] if r["family"] not in rerun] + rows
        rows.sort(key=lambda r: FASHION_SPECS.index(r["spec"].split()[0].split("/")[-1]))
    fashion_result = {"data": f"data/fashion-mnist-{10 * FASHION_IMAGES_PER_CLASS} (first "
                              f"{FASHION_IMAGES_PER_CLASS} of each class of the train split)",
                      "epochs": FASHION_EPOCHS, "test_images": 10_000, "int8_test_images": INT8_TEST_IMAGES,
                      "board": BOARD, "runs": rows}
    # families.json's provenance is the newest measurement's; the digits rows keep their own commit in git.
    write_result("families", {k: v for k, v in previous.items() if k != "provenance"} | {"fashion-mnist": fashion_result})


def main(argv: list[str]) -> None:
    if argv[:1] == ["--fashion"]:
        fashion(argv[1:] or None)
    else:
        digits(argv or None)


if __name__ == "__main__":
    main(sys.argv[1:])
