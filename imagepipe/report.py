"""One self-contained HTML page per run: outputs/<pipeline>/reports/<run id>/report.html.

Everything comes from the run's artifacts in ML Metadata: the examples (counts
per class and split, sample images, image sizes), the ingest report (skipped
files), the ExampleValidator's anomalies, the Trainer's history, the
Evaluator's metrics and confusion matrix, and the pushes. Charts are drawn
with matplotlib and inlined as PNG; the page is a jinja2 template.
"""
from __future__ import annotations

import base64
import collections
import hashlib
import io
import json
import posixpath
from pathlib import Path
from typing import Callable, Dict, List, Optional

import jinja2

from components.artifacts import IngestReport
from components.contracts import (
    CLASSIFICATION,
    INGEST_REPORT_FILE,
    TRAINING_HISTORY_FILE,
    json_exists,
    read_ingest_report,
    read_json,
    read_label_names,
)
from imagepipe.results import RunArtifact, RunSummary

TEMPLATES = Path(__file__).resolve().parent / "templates"
SAMPLES_PER_CLASS = 8


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _glob(folder: str, pattern: str) -> List[str]:
    """Through TensorFlow's file system: artifacts may be in an object store (a Kubeflow pipeline root)."""
    import tensorflow as tf

    return sorted(tf.io.gfile.glob(posixpath.join(folder, pattern)))


def _split_dirs(examples_uri: str) -> Dict[str, str]:
    return {posixpath.basename(p.rstrip("/"))[len("Split-"):]: p for p in _glob(examples_uri, "Split-*")}


def image_data_section(examples_uri: str, ingest_report_uri: Optional[str]) -> Dict:
    """Counts per class and split, a grid of samples per class, image sizes, skipped files."""
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    plt = _pyplot()
    counts: Dict[str, collections.Counter] = {}
    samples: Dict[str, List[bytes]] = collections.defaultdict(list)
    sizes = []
    for split, folder in _split_dirs(examples_uri).items():
        counts[split] = collections.Counter()
        for record in tf.data.TFRecordDataset(_glob(folder, "*.gz"), compression_type="GZIP"):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            name = feature["label_name"].bytes_list.value[0].decode() or "(unlabelled)"
            counts[split][name] += 1
            sizes.append((feature["width"].int64_list.value[0], feature["height"].int64_list.value[0]))
            if split == "train" and len(samples[name]) < SAMPLES_PER_CLASS:
                samples[name].append(feature["image"].bytes_list.value[0])
    classes = sorted({name for c in counts.values() for name in c})

    figure, axes = plt.subplots(figsize=(max(6, 0.5 * len(classes)), 3))
    width = 0.8 / max(1, len(counts))
    for index, (split, counter) in enumerate(counts.items()):
        axes.bar([i + index * width for i in range(len(classes))], [counter[c] for c in classes], width, label=split)
    axes.set_xticks([i + 0.4 - width / 2 for i in range(len(classes))], classes, rotation=45, ha="right")
    axes.set_ylabel("images")
    axes.legend()
    per_class_chart = _png(figure)

    rows = len(classes)
    figure, axes = plt.subplots(rows, SAMPLES_PER_CLASS, figsize=(SAMPLES_PER_CLASS * 0.9, rows * 0.9), squeeze=False)
    for row, name in enumerate(classes):
        for column in range(SAMPLES_PER_CLASS):
            axis = axes[row][column]
            axis.axis("off")
            if column < len(samples[name]):
                image = Image.open(io.BytesIO(samples[name][column]))
                image.thumbnail((96, 96))
                axis.imshow(image.convert("RGB"))
        axes[row][0].set_title(name, fontsize=8, loc="left")
    samples_chart = _png(figure)

    figure, axes = plt.subplots(figsize=(4, 3))
    axes.scatter([w for w, _ in sizes], [h for _, h in sizes], s=6, alpha=0.3)
    axes.set_xlabel("width (pixels)")
    axes.set_ylabel("height (pixels)")
    sizes_chart = _png(figure)

    brightness = [float(np.asarray(Image.open(io.BytesIO(data)).convert("L")).mean())
                  for images in samples.values() for data in images]
    image_stats = {"mean_width": float(np.mean([w for w, _ in sizes])) if sizes else None,
                   "mean_height": float(np.mean([h for _, h in sizes])) if sizes else None,
                   "mean_brightness": float(np.mean(brightness)) if brightness else None}

    ingest = {}
    if ingest_report_uri and json_exists(posixpath.join(ingest_report_uri, INGEST_REPORT_FILE)):
        ingest = read_ingest_report(ingest_report_uri)
    return {
        "kind": "images",
        "counts": {split: dict(counter) for split, counter in counts.items()},
        "classes": classes,
        "charts": {"per_class": per_class_chart, "samples": samples_chart, "sizes": sizes_chart},
        "skipped": ingest.get("skipped", []),
        "empty_class_folders": ingest.get("empty_class_folders", []),
        "ignored": ingest.get("ignored", []),
        "span_folders": ingest.get("span_folders", []),
        "data_root": ingest.get("data_root"),
        # The model's classes, in label order: the confusion matrix's axes (never "(unlabelled)").
        "label_names": read_label_names(examples_uri),
        "image_stats": image_stats,
    }


def table_data_section(examples_uri: str) -> Dict:
    """Generated tabular data (sine): examples per split and a scatter of the train split."""
    import tensorflow as tf

    plt = _pyplot()
    counts, points = {}, []
    for split, folder in _split_dirs(examples_uri).items():
        counts[split] = 0
        for record in tf.data.TFRecordDataset(_glob(folder, "*.gz"), compression_type="GZIP"):
            counts[split] += 1
            if split == "train":
                feature = tf.train.Example.FromString(record.numpy()).features.feature
                points.append((feature["x"].float_list.value[0], feature["y"].float_list.value[0]))
    figure, axes = plt.subplots(figsize=(5, 3))
    axes.scatter([x for x, _ in points], [y for _, y in points], s=4)
    axes.set_xlabel("x")
    axes.set_ylabel("y")
    return {"kind": "table", "counts": counts, "charts": {"scatter": _png(figure)}}


def anomalies_section(anomalies_uri: Optional[str]) -> Dict[str, List[str]]:
    """Per split, the ExampleValidator's anomalies (feature: description)."""
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    result = {}
    for split, folder in _split_dirs(anomalies_uri).items() if anomalies_uri else []:
        anomalies = anomalies_pb2.Anomalies()
        with tf.io.gfile.GFile(posixpath.join(folder, "SchemaDiff.pb"), "rb") as f:
            anomalies.ParseFromString(f.read())
        result[split] = [f"{name}: {info.description}" for name, info in anomalies.anomaly_info.items()]
        result[split] += [f"dataset: {reason.description}" for reason in anomalies.dataset_anomaly_info.reason]
    return result


def training_section(model_run_uri: Optional[str]) -> Dict:
    history_path = posixpath.join(model_run_uri, TRAINING_HISTORY_FILE) if model_run_uri else None
    if not history_path or not json_exists(history_path):
        return {}
    history = read_json(history_path)
    plt = _pyplot()
    metrics = [name for name in history if not name.startswith("val_") and name != "learning_rate"]
    figure, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3), squeeze=False)
    for axis, name in zip(axes[0], metrics):
        epochs = range(1, len(history[name]) + 1)
        axis.plot(epochs, history[name], label=f"train {name}")
        if f"val_{name}" in history:
            axis.plot(epochs, history[f"val_{name}"], label=f"eval {name}")
        axis.set_xlabel("epoch")
        axis.set_title(name)
        axis.legend()
    final = {name: values[-1] for name, values in history.items() if values}
    return {"epochs": len(next(iter(history.values()), [])), "final": final, "chart": _png(figure)}


def confusion_section(evaluation_uri: Optional[str], classes: List[str]) -> Dict:
    """The eval split's confusion matrix (TFMA's MultiClassConfusionMatrixPlot), with precision and recall."""
    if not evaluation_uri or not classes:
        return {}
    import numpy as np
    import tensorflow_model_analysis as tfma

    matrix = np.zeros((len(classes), len(classes)))
    for plots in tfma.load_plots(evaluation_uri):
        if plots.slice_key.single_slice_keys:
            continue
        for key_and_value in plots.plot_keys_and_values:
            if key_and_value.key.model_name == "baseline":
                continue
            for table in key_and_value.value.multi_class_confusion_matrix_at_thresholds.matrices[:1]:
                for entry in table.entries:
                    if 0 <= entry.actual_class_id < len(classes) and 0 <= entry.predicted_class_id < len(classes):
                        matrix[entry.actual_class_id, entry.predicted_class_id] += entry.num_weighted_examples
    if not matrix.sum():
        return {}
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(0.45 * len(classes) + 2, 0.45 * len(classes) + 1.5))
    axes.imshow(matrix, cmap="Blues")
    for (row, column), value in np.ndenumerate(matrix):
        if value:
            axes.text(column, row, int(value), ha="center", va="center", fontsize=7,
                      color="white" if value > matrix.max() / 2 else "black")
    axes.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("actual")
    per_class = []
    for index, name in enumerate(classes):
        predicted, actual = matrix[:, index].sum(), matrix[index, :].sum()
        per_class.append({"class": name, "support": int(actual),
                          "precision": matrix[index, index] / predicted if predicted else None,
                          "recall": matrix[index, index] / actual if actual else None})
    return {"chart": _png(figure), "per_class": per_class}


GALLERY_SIZE = 16
GALLERY_SCAN = 2000  # eval examples looked through for the gallery, at most
FACTS_FILE = "facts.json"  # beside each report: what the next report compares against


def misclassified_section(model_uri: Optional[str], examples_uri: Optional[str]) -> Dict:
    """Up to GALLERY_SIZE eval images the trained model gets wrong, with the true and predicted class."""
    if not model_uri or not examples_uri:
        return {}
    import tensorflow as tf
    from PIL import Image

    serving = posixpath.join(model_uri, "Format-Serving")
    folder = _split_dirs(examples_uri).get("eval")
    if not tf.io.gfile.isdir(serving) or folder is None:
        return {}
    predict = tf.saved_model.load(serving).signatures["serving_examples"]
    records = tf.data.TFRecordDataset(_glob(folder, "*.gz"), compression_type="GZIP")
    wrong, seen = [], 0
    for batch in records.take(GALLERY_SCAN).batch(128):
        predicted = predict(examples=batch)["label"].numpy()
        for serialized, label in zip(batch.numpy(), predicted):
            feature = tf.train.Example.FromString(serialized).features.feature
            truth = feature["label_name"].bytes_list.value[0].decode()
            seen += 1
            if truth and truth != label.decode() and len(wrong) < GALLERY_SIZE:
                wrong.append((feature["image"].bytes_list.value[0], truth, label.decode(),
                              feature["filename"].bytes_list.value[0].decode()))
    if not wrong:
        return {"seen": seen, "count": 0}
    plt = _pyplot()
    columns = min(8, len(wrong))
    rows = -(-len(wrong) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.3, rows * 1.5), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, (data, truth, label, _) in zip(axes.flat, wrong):
        image = Image.open(io.BytesIO(data))
        image.thumbnail((96, 96))
        axis.imshow(image.convert("RGB"))
        axis.set_title(f"{truth} -> {label}", fontsize=7)
    return {"seen": seen, "count": len(wrong), "chart": _png(figure), "files": [f for *_, f in wrong]}


def run_facts(summary: RunSummary, data: Dict) -> Dict:
    """What one run's report compares with the next: its metric, images per class, image size and brightness."""
    return {"run_id": summary.run_id, "accuracy": summary.accuracy, "mean_absolute_error": summary.mean_absolute_error,
            # Image data: images per class per split; generated data: examples per split.
            "counts": {split: dict(counts) if isinstance(counts, dict) else {"examples": counts}
                       for split, counts in data.get("counts", {}).items()},
            "image": data.get("image_stats", {})}


def comparison_section(reports_dir: Path, run_id: str, facts: Dict) -> Dict:
    """This run against the previous report's facts: metric, per-class counts, image size and brightness drift."""
    previous = sorted((p for p in reports_dir.glob(f"*/{FACTS_FILE}") if p.parent.name != run_id),
                      key=lambda p: p.stat().st_mtime)
    if not previous:
        return {}
    before = json.loads(previous[-1].read_text())
    rows = []
    for name in ("accuracy", "mean_absolute_error"):
        if facts.get(name) is not None and before.get(name) is not None:
            rows.append((name.replace("_", " "), before[name], facts[name], facts[name] - before[name]))
    for key, label in (("mean_width", "mean image width (px)"), ("mean_height", "mean image height (px)"),
                       ("mean_brightness", "mean brightness (0-255)")):
        now, then = facts["image"].get(key), before.get("image", {}).get(key)
        if now is not None and then is not None:
            rows.append((label, then, now, now - then))
    classes = sorted({c for counts in (facts["counts"], before.get("counts", {})) for split in counts.values() for c in split})
    per_class = []
    for name in classes:
        now = sum(split.get(name, 0) for split in facts["counts"].values())
        then = sum(split.get(name, 0) for split in before.get("counts", {}).values())
        if now != then:
            per_class.append((name, then, now, now - then))
    return {"previous": before["run_id"], "rows": rows, "per_class": per_class}


def _drawn_once(reports_dir: Path, section: str, uris: List[Optional[str]], draw: Callable[[], Dict]) -> Dict:
    """A section drawn from artifacts is the same every time it is drawn from them (TFX artifacts are never
    rewritten): kept in reports/.sections/ by the artifacts' URIs, so that a cached re-run does not read
    every example again (about 4 s of the digits' cached run)."""
    if not all(uris):
        return draw()
    key = hashlib.sha256(json.dumps([section, *uris]).encode()).hexdigest()[:20]
    path = reports_dir / ".sections" / f"{section}-{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    result = draw()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(result))
    temporary.replace(path)
    return result


def write_report(loaded, summary: RunSummary, outputs: List[RunArtifact], reports_dir: Path) -> Path:
    """Writes reports/<run id>/report.html (atomically) and returns its path."""
    artifacts = {}
    for artifact in outputs:
        artifacts.setdefault(artifact.kind, artifact.uri)
    spec = loaded.spec
    examples, ingest = artifacts.get("Examples"), artifacts.get(IngestReport.TYPE_NAME)
    if not examples:
        data = {}
    elif spec.data.generate:
        data = _drawn_once(reports_dir, "table-data", [examples], lambda: table_data_section(examples))
    else:
        data = _drawn_once(reports_dir, "image-data", [examples, ingest], lambda: image_data_section(examples, ingest))
    evaluation = spec.evaluation
    thresholds = ({"min accuracy": evaluation.min_accuracy, "max drop below the baseline": evaluation.max_accuracy_drop}
                  if spec.task == CLASSIFICATION else
                  {"max mean absolute error": evaluation.max_mean_absolute_error,
                   "max increase over the baseline": evaluation.max_mean_absolute_error_increase})
    facts = run_facts(summary, data)
    page = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True).get_template(
        "report.html.j2").render(
        spec_path=str(loaded.path), summary=summary, status=summary.status, data=data,
        anomalies=anomalies_section(artifacts.get("ExampleAnomalies")),
        training=training_section(artifacts.get("ModelRun")),
        confusion=confusion_section(artifacts.get("ModelEvaluation"), data.get("label_names", [])),
        misclassified=_drawn_once(reports_dir, "misclassified", [artifacts.get("Model"), examples],
                                  lambda: misclassified_section(artifacts.get("Model"), examples))
        if spec.task == CLASSIFICATION else {},
        comparison=comparison_section(reports_dir, summary.run_id, facts),
        thresholds=thresholds, task=spec.task,
    )
    out_dir = reports_dir / summary.run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / FACTS_FILE).write_text(json.dumps(facts, indent=2))
    temporary = out_dir / ".report.html.tmp"
    temporary.write_text(page, encoding="utf-8")
    temporary.replace(out_dir / "report.html")
    return out_dir / "report.html"


def latest_report(reports_dir: Path) -> Optional[Path]:
    reports = sorted(reports_dir.glob("*/report.html"), key=lambda p: p.stat().st_mtime)
    return reports[-1] if reports else None
