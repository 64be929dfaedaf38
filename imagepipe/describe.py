"""The text `imagepipe run` ends with: a RunSummary in a few lines (docs/samples/make-run.txt is one)."""
from __future__ import annotations

import os
from typing import Dict

from imagepipe.results import RunSummary


def shown_path(path) -> str:
    """A path as the user will type it: relative to the working directory when it lies below it."""
    if path is None:
        return ""
    text = str(path)
    if "://" in text:
        return text
    relative = os.path.relpath(text)
    return text if relative.startswith("..") else relative


def describe(summary: RunSummary) -> str:
    lines = [f"pipeline {summary.pipeline}, run {summary.run_id}: "
             f"{len(summary.executed)} component(s) executed, {len(summary.cached)} reused from cache"]
    if summary.files_ingested is not None:
        lines.append(f"images ingested: {summary.files_ingested}, skipped: {summary.files_skipped}")
    for warning in summary.training_warnings:
        lines.append(f"warning: {warning}")
    if summary.kept_epoch is not None:
        lines.append(f"kept epoch {summary.kept_epoch} of {summary.epochs_run}: {summary.kept_because}")
    for name, value, baseline_value in (
        ("accuracy", summary.accuracy, summary.baseline_accuracy),
        ("mean absolute error", summary.mean_absolute_error, summary.baseline_mean_absolute_error),
    ):
        if value is not None:
            baseline = f" (baseline {baseline_value:.4f})" if baseline_value is not None else " (no baseline yet)"
            lines.append(f"eval {name}: {value:.4f}{baseline}")
    if summary.pushed and summary.already_pushed:
        lines.append(f"nothing new to push: this model is already version {summary.pushed_version} at "
                     f"{shown_path(summary.pushed_destination)}")
    elif summary.pushed:
        lines.append(f"pushed version {summary.pushed_version} to {shown_path(summary.pushed_destination)}")
    elif summary.blessed is False or not summary.edge:
        lines.append("not blessed, nothing pushed" + (":" if summary.validation_failures else ""))
        lines.extend(f"  - {failure}" for failure in summary.validation_failures)
    if summary.serving_now and "error" in summary.serving_now:
        lines.append(f"warning: {summary.serving_now['error']}")
    elif summary.serving_now:
        lines.append(f"TF Serving now serves stable version {summary.serving_now['stable']}, "
                     f"canary {summary.serving_now['canary']} (models.config)")
    if summary.edge and "metric" in summary.edge:
        lines.append(describe_edge(summary.edge))
    if summary.report:
        lines.append(f"report: {shown_path(summary.report)}")
    return os.linesep.join(lines)


def describe_edge(edge: Dict) -> str:
    if "error" in edge:
        return f"edge: not pushed: {edge['error']}"
    metric = edge["metric"]
    numbers = (f"int8 {edge['int8_model_bytes']} bytes (float {edge['float_model_bytes']}), "
               f"arena {edge['arena_bytes']} bytes, {metric.replace('_', ' ')} int8 {edge[f'int8_{metric}']:.4f} "
               f"vs float {edge[f'float_{metric}']:.4f}")
    device = edge.get("device")
    if device and "error" not in device:
        numbers += (f"; on the TFLite Micro library ({device['target']}): arena {device['arena_bytes']} bytes, "
                    f"RAM {device['ram_bytes']}, flash {device['flash_bytes']} (model {device['flash_model_bytes']} "
                    f"+ runtime {device['flash_runtime_bytes']}), golden vectors "
                    f"{'bit-exact' if device['golden_bit_exact'] else 'DIFFER'}")
    if edge["pushed"]:
        return f"edge: version {edge['version']} at {shown_path(edge['destination'])}: {numbers}"
    reasons = edge.get("refused_because") or [name.replace("_", " ") for name, ok in edge["checks"].items() if not ok]
    hint = f"; what would fit: {edge['what_would_fit']}" if edge.get("what_would_fit") else ""
    return f"edge: not pushed: {'; '.join(reasons)}{hint} ({numbers})"
