"""Benchmark: every model family through the real pipeline on the embedded digits.

For each `pipelines/digits-<family>.yaml` (and `digits.yaml` for convnet), in
a scratch output folder: parameters, epochs run, Trainer seconds (from MLMD),
eval accuracy (TFMA), SavedModel size. `mobilenet_transfer` runs with
`weights: none` unless ~/.keras/models holds the ImageNet weights (no
download on machines without internet).

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


def main(only: list[str] | None = None) -> None:
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
            rows.append({
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
            })
            print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = REPO / "bench" / "results" / "families.json"
    if only and results.exists():
        rerun = {r["spec"] for r in rows}
        kept = [r for r in json.loads(results.read_text())["runs"] if r["spec"] not in rerun]
        rows = sorted(kept + rows, key=lambda r: SPECS.index(r["spec"].split("/")[-1]))
    write_result("families", {"benchmark": "families", "runs": rows})
    print("| family | parameters | epochs | train s | eval accuracy | SavedModel MB | status |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        mb = f"{r['saved_model_bytes'] / 1e6:.2f}" if r["saved_model_bytes"] else "-"
        acc = f"{r['eval_accuracy']:.4f}" if r["eval_accuracy"] is not None else "-"
        print(f"| {r['family']} | {r['parameters']:,} | {r['epochs']} | {r['train_seconds']} | {acc} | {mb} | {r['status']} |"
              if r["saved_model_bytes"] else f"| {r['family']} | {r['parameters']:,} | - | - | - | - | failed ({r['exit_code']}) |")


if __name__ == "__main__":
    main(sys.argv[1:] or None)
