"""Rewrites the results tables in bench/README.md and README.md from bench/results/*.json (run last by
`make bench`; `--check` only compares). Every number in those tables comes from a results file, named in
the table; tests/imagepipe/test_readme.py fails when a table and its files disagree."""
from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

BENCH = Path(__file__).resolve().parent
END = "<!-- end of results -->"


def load(name: str) -> dict | None:
    path = BENCH / "results" / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def verdict(met) -> str:
    return "met" if met else "**not met**"


def rows() -> list[tuple[str, str, str, str]]:
    """(comparison, measured, target, verdict)"""
    out = []
    ingest = load("ingest")
    if ingest:
        s, beam = ingest["summary"], ingest["tfx_beam"]["full"]["components"]["ImageExampleGen"]
        codelab = ingest["codelab_loop"]
        passes = ", ".join(f"{rate:,}" for rate in codelab.get("images_per_second_each_pass", []))
        out.append((f"ingest {ingest['images']:,} JPEGs: ImageExampleGen (beam) vs the codelab loop",
                    f"{beam['images_per_second']:,} vs {codelab['images_per_second']:,} img/s "
                    f"= {s['beam_vs_codelab']}x with start-up, {s.get('beam_steady_vs_codelab', '?')}x steady"
                    + (f" (codelab passes: {passes} img/s)" if passes else ""), f">= {s['targets']['beam_vs_codelab']}x",
                    verdict(s["beam_vs_codelab"] >= s["targets"]["beam_vs_codelab"])))
        if "beam_vs_codelab_fastest" in s:
            out.append(("ingest: ImageExampleGen (beam) vs the codelab loop's fastest pass",
                        f"{beam['images_per_second']:,} vs {max(codelab['images_per_second_each_pass']):,} img/s "
                        f"= {s['beam_vs_codelab_fastest']}x", f">= {s['targets']['beam_vs_codelab_fastest']}x",
                        verdict(s["beam_vs_codelab_fastest"] >= s["targets"]["beam_vs_codelab_fastest"])))
        out.append(("ingest: beam steady state vs decode limit x cores",
                    f"{beam['steady_images_per_second']:,} img/s after {beam['startup_seconds']} s start-up "
                    f"= {s['beam_steady_vs_decode_limit_x_cores']} of "
                    f"{ingest['decode_limit']['pil_images_per_second_per_core']:,} x {ingest['machine']['cpus']}",
                    f">= {s['targets']['beam_steady_vs_decode_limit_x_cores']}",
                    verdict(s["beam_steady_vs_decode_limit_x_cores"] >= s["targets"]["beam_steady_vs_decode_limit_x_cores"])))
        growth = s.get("example_gen_peak_rss_full_vs_subset")
        if growth:
            out.append(("ingest memory: peak RSS at 20,000 vs 2,000 images",
                        ", ".join(f"{runner} {ratio}x" for runner, ratio in growth.items()), "no growth (~1.0x)",
                        verdict(max(growth.values()) <= 1.2)))
    training = load("training_input")
    if training:
        rate, ratio, met = training["images_per_second"], training["ratios"], training["target_met"]
        out.append(("training input (over the spec's epochs) vs one file at a time, same preprocessing",
                    f"{rate['pipeline_over_the_specs_training']:,} vs {rate['one_by_one_files_same_preprocessing']:,} img/s "
                    f"= {ratio['over_training_vs_one_by_one_same_preprocessing']}x", ">= 3x",
                    verdict(met["vs_one_by_one_same_preprocessing"])))
        out.append(("training input vs one file at a time, bare PIL decode + resize",
                    f"{rate['pipeline_over_the_specs_training']:,} vs {rate['one_by_one_files']:,} img/s "
                    f"= {ratio['over_training_vs_one_by_one']}x", ">= 3x", verdict(met["vs_one_by_one_bare_decode"])))
        out.append(("training input vs what the model consumes",
                    f"first epoch {ratio['first_epoch_vs_model']}x, cached + augmented {ratio['cached_augmented_vs_model']}x "
                    f"({rate['model_training_steps']:,} img/s)", ">= 3x", verdict(met["vs_model"])))
    overhead = load("overhead")
    if overhead:
        sec, ratio, met, memory = overhead["seconds"], overhead["ratios"], overhead["target_met"], overhead["memory"]
        targets = overhead["targets"]
        out.append(("digits pipeline first run vs the plain Keras script",
                    f"{sec['pipeline_first_run']} s vs {sec['plain_script']} s = {ratio['pipeline_first_vs_plain']}x",
                    f"<= {targets['pipeline_first_vs_plain']}x", verdict(met["pipeline_first_vs_plain"])))
        out.append(("digits pipeline cached re-run vs the plain script",
                    f"{sec['pipeline_cached_rerun']} s = {ratio['pipeline_cached_vs_plain']}x", "< 1x",
                    verdict(met["pipeline_cached_vs_plain"])))
        if "pipeline_cached_rerun_seconds" in targets:
            out.append(("digits pipeline cached re-run (start-up)", f"{sec['pipeline_cached_rerun']} s",
                        f"<= {targets['pipeline_cached_rerun_seconds']:g} s",
                        verdict(met["pipeline_cached_rerun_seconds"])))
        peaks = memory["peak_rss_mb"]
        out.append(("`make run` peak memory (process tree), all vs a fifth of the images",
                    ", ".join(f"{k.replace('_', ' ')} {v:,} MB" for k, v in peaks.items())
                    + f" = {memory['pipeline_full_vs_fifth']}x", "no growth (~1.0x)",
                    verdict(memory["pipeline_full_vs_fifth"] <= 1.2)))
    semi = load("mixmatch")
    if semi and "comparisons" in semi:
        for c in semi["comparisons"]:
            acc = c["median_eval_accuracy"]
            target = c["labels_per_class"] == semi["target_labels_per_class"]
            out.append((f"MixMatch vs supervised-only, {c['labels']} labels ({c['labels_per_class']} per class), "
                        f"{c['unlabelled']:,} unlabelled, {semi['steps']:,} steps",
                        f"eval accuracy {acc['mixmatch']:.3f} vs {acc['supervised']:.3f} = {c['gain_points']:+} points",
                        ">= +10 points" if target else "(no target; more room)",
                        verdict(c["gain_points"] >= semi["target_points"]) if target else ""))
    fashion = (semi or {}).get("fashion-mnist")
    if fashion and fashion.get("gain_points") is not None:
        acc = {m: fashion[m]["median_test_accuracy"] for m in ("supervised", "mixmatch")}
        variant = fashion.get("variant", "spec")
        out.append((f"MixMatch vs supervised-only on Fashion-MNIST, {fashion['labels']} labels, {fashion['steps']:,} "
                    f"steps, median of {fashion['seeds']} seed(s), variant `{variant}` (`bench/mixmatch_fashion.py`)",
                    f"test accuracy {acc['mixmatch']:.3f} vs {acc['supervised']:.3f} = {fashion['gain_points']:+} points",
                    ">= +10 points, >= 3 seeds", verdict(fashion["target_met"])))
        for lever in fashion.get("levers", []):
            if (lever["variant"], lever["steps"]) == (variant, fashion["steps"]) or lever["gain_points"] is None:
                continue
            both = {m: lever[m]["median_test_accuracy"] for m in ("supervised", "mixmatch")}
            out.append((f"  lever: variant `{lever['variant']}`, {lever['steps']:,} steps, "
                        f"{min(lever[m]['seeds'] for m in both)} seed(s)",
                        f"test accuracy {both['mixmatch']:.3f} vs {both['supervised']:.3f} = {lever['gain_points']:+} points",
                        "(a lever measured)", ""))
    scale = load("scale")
    if scale:
        for runner, ratios in scale["large_vs_small"].items():
            seconds = ", ".join(f"{name} {r['seconds']}x" for name, r in ratios.items())
            memory = ", ".join(f"{name} {r['peak_rss_mb']}x" for name, r in ratios.items())
            out.append((f"scale: Fashion-MNIST 60,000 vs 6,000 images, {runner} runner (`bench/scale.py`; Trainer: 1 epoch)",
                        f"time {seconds}; peak memory {memory}", "time <= 10x, memory ~1.0x (<= 1.2x)",
                        verdict(all(r["seconds"] <= 10 and r["peak_rss_mb"] <= 1.2 for r in ratios.values()))))
    return out


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%"


def how_well_rows() -> list[tuple[str, str, str]]:
    """README "How well it works": (what, result, source file)."""
    out = []
    families = load("families")
    convnet = next((r for r in (families or {}).get("runs", []) if r["spec"] == "pipelines/digits.yaml"), None)
    overhead = load("overhead")
    if convnet:
        edge = convnet["edge"]
        out.append(("digits eval accuracy (`pipelines/digits.yaml`, convnet, eval split of the 5,000 MNIST digits)",
                    f"{convnet['eval_accuracy']:.4f}" + (f"; {overhead['accuracy']['pipeline']:.4f} in the overhead "
                                                         "benchmark's run" if overhead else ""),
                    "`bench/results/families.json`" + (", `bench/results/overhead.json`" if overhead else "")))
        out.append(("digits int8 model in TFLite Micro (same eval split)",
                    f"accuracy {edge['int8_accuracy']:.4f} vs float {edge['float_accuracy']:.4f} on "
                    f"{edge['eval_samples']:,} images; {edge['int8_model_bytes']:,} bytes "
                    f"({_pct(edge['int8_model_bytes'], edge['float_model_bytes'])} of float's "
                    f"{edge['float_model_bytes']:,}); arena {edge['arena_bytes']:,} bytes",
                    "`bench/results/families.json` (`edge`)"))
    fashion = (load("fashion") or {}).get("measured", {})
    for name, entry in sorted(fashion.items()):
        if entry.get("served_version") is None:
            run = entry.get("run") or {}
            out.append((f"`imagepipe run {entry['spec']}` (Fashion-MNIST, {run.get('files_ingested', 0):,} images)",
                        f"{entry['status']}: eval accuracy {entry['eval_accuracy']:.4f} against its gate's "
                        f"{run.get('validation_failures', ['?'])[0].split('value: ')[-1].split()[0]}; nothing pushed, "
                        f"so no test-set accuracy; {run.get('wall_seconds', 0):,.0f} s", "`bench/results/fashion.json`"))
            continue
        int8 = (f"; int8 in TFLite Micro {entry['int8_test_accuracy']:.4f} ({entry['int8_model_bytes']:,} bytes)"
                if "int8_test_accuracy" in entry else "")
        out.append((f"Fashion-MNIST's 10,000 test images, never seen in training, sent to `serving_default` as PNGs "
                    f"(`{entry['spec']}`, version {entry['served_version']})",
                    f"accuracy {entry['test_accuracy']:.4f} (eval split {entry['eval_accuracy']:.4f}, kept epoch "
                    f"{entry['kept_epoch']} of {entry['epochs_run']}){int8}", "`bench/results/fashion.json`"))
    others = load("other_source_digits")
    if others:
        results = others["results"]
        out.append(("digits by 43 other writers (scikit-learn `load_digits`, 1,797 8x8 images) sent to "
                    "`serving_default` as base64 PNGs", "; ".join(f"{name}: {r['accuracy']:.4f}"
                                                                 for name, r in results.items()),
                    "`bench/results/other_source_digits.json`"))
    if overhead:
        sec, ratio, peaks = overhead["seconds"], overhead["ratios"], overhead["memory"]["peak_rss_mb"]
        out.append((f"`pipelines/digits.yaml` vs a plain Keras script doing the same work (`bench/plain_keras.py`), "
                    f"medians of {overhead['repeats']} passes",
                    f"first run {sec['pipeline_first_run']} s vs {sec['plain_script']} s "
                    f"({ratio['pipeline_first_vs_plain']}x); cached re-run {sec['pipeline_cached_rerun']} s "
                    f"({ratio['pipeline_cached_vs_plain']}x the script); peak memory "
                    f"{peaks['pipeline_first_run']:,} MB vs {peaks['plain_script']:,} MB",
                    "`bench/results/overhead.json`"))
    edge = load("edge")
    if edge:
        book = edge["book"]
        out.append((f"sine hello world, int8 in TFLite Micro on the held-out test split ({edge['test_samples']} samples)",
                    f"{edge['int8_model_bytes']:,} bytes (book: {book['int8_model_bytes']:,}), arena "
                    f"{edge['arena_bytes']:,} bytes (tflite-micro Python wrapper), test MSE {edge['int8_test_mse']:.4f} "
                    f"(book {book['int8_test_mse']}; float {edge['float_test_mse']:.4f} vs book {book['float_test_mse']}), "
                    f"mean absolute error vs sin(x) {edge['int8_mae_vs_sin_x']:.3f}", "`bench/results/edge.json`"))
    seeds = load("sine_seeds")
    if seeds:
        out.append((f"sine training over {seeds['seeds']} seeds", f"{seeds['first_attempts_stuck']} first attempts "
                    f"stuck, {seeds['runs_stuck_after_restarts']} stuck after restarts, worst eval MSE "
                    f"{seeds['worst_final_eval_mse']:.4f}", "`bench/results/sine_seeds.json`"))
    return out


def families_rows() -> list[tuple]:
    """README families table: (family, spec, parameters, epochs, train s, eval accuracy, SavedModel MB)."""
    families = load("families")
    return [(r["family"] + (f" (`weights: {r['hyperparameters']['weights']}`)" if "weights" in r["hyperparameters"] else ""),
             f"`{r['spec'].split('/')[-1]}`", f"{r['parameters']:,}", str(r["epochs"]),
             f"{r['train_seconds']:.0f}", f"{r['eval_accuracy']:.4f}", f"{r['saved_model_bytes'] / 1e6:.2f}")
            for r in (families or {}).get("runs", []) if r["saved_model_bytes"]]


def mixmatch_fashion_curve_rows() -> list[tuple]:
    """README MixMatch-on-Fashion-MNIST curve: per scored step of the headline comparison (variant, steps), the
    medians over seeds of each method's test accuracy and of MixMatch's label guesses (runs that measured them)."""
    fashion = (load("mixmatch") or {}).get("fashion-mnist")
    if not fashion or fashion.get("steps") is None:
        return []
    headline = {m: [r for r in fashion[m]["runs"] if (r["variant"], r["steps"]) == (fashion["variant"], fashion["steps"])]
                for m in ("supervised", "mixmatch")}

    def median_at(runs: list[dict], step: int, read) -> str:
        values = [v for v in (read(r, step) for r in runs) if v is not None]
        return f"{statistics.median(values):.3f} ({len(values)})" if values else "-"

    def accuracy(run: dict, step: int):
        return next((a for s, a in run["curve"] if s == step), None)

    def guess(field: str):
        return lambda run, step: next((g[field] for g in run.get("guesses", []) if g["step"] == step), None)

    steps = sorted({s for runs in headline.values() for r in runs for s, _ in r["curve"]})
    return [(f"{step:,}", median_at(headline["supervised"], step, accuracy), median_at(headline["mixmatch"], step, accuracy),
             median_at(headline["mixmatch"], step, guess("right")),
             median_at(headline["mixmatch"], step, guess("wrong_confident")))
            for step in steps]


def fashion_families_rows() -> list[tuple]:
    """README Fashion-MNIST families table, from families.json's "fashion-mnist"."""
    fashion = (load("families") or {}).get("fashion-mnist")
    if not fashion:
        return []
    out = []
    for r in fashion["runs"]:
        if not r.get("pushed_version"):
            out.append((r["family"], f"{r['parameters']:,}", "-", "-", "-", "-", "-", "-", f"failed ({r['exit_code']})"))
            continue
        edge = r["edge"]
        out.append((r["family"] + (f" (`weights: {r['hyperparameters']['weights']}`)" if "weights" in r["hyperparameters"] else ""),
                    f"{r['parameters']:,}", str(r["epochs"]), f"{r['train_seconds']:.0f}", f"{r['test_accuracy']:.4f}",
                    f"{r['subset_int8_accuracy']:.4f} vs {r['subset_float_accuracy']:.4f}",
                    f"{edge['int8_model_bytes'] / 1024:,.0f}", f"{edge['arena_bytes'] / 1024:,.0f}",
                    "yes" if r["fits_board"] else "no"))
    return out


def scale_rows() -> list[tuple]:
    """README scale table, from scale.json: seconds and peak memory per component, 6,000 -> 60,000 images."""
    scale = load("scale")
    if not scale:
        return []
    out = []
    for runner, runs in scale["runs"].items():
        small, large = runs["6000"]["components"], runs["60000"]["components"]
        for name in scale["large_vs_small"][runner]:
            out.append((runner, name + (" (1 epoch)" if name == "Trainer" else ""),
                        f"{small[name]['seconds']:.1f} -> {large[name]['seconds']:.1f}",
                        f"{small[name]['peak_rss_mb']:,.0f} -> {large[name]['peak_rss_mb']:,.0f}"))
    return out


def markdown(header: list[str], body: list[tuple], align: str = "") -> list[str]:
    align = align or "-" * len(header)
    return ([f"| {' | '.join(header)} |", "| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |"]
            + [f"| {' | '.join(row)} |" for row in body])


def blocks() -> dict[Path, dict[str, str]]:
    """{file: {block name: generated text}}."""
    bench_table = markdown(["comparison", "measured", "target", ""], rows())
    return {
        BENCH / "README.md": {"bench": "\n".join(bench_table)},
        BENCH.parent / "README.md": {
            "how-well": "\n".join(markdown(["what", "result", "source"], how_well_rows())),
            "families": "\n".join(markdown(["family", "spec", "parameters", "epochs", "train s", "eval accuracy",
                                             "SavedModel MB"], families_rows(), "--rrrrr")),
            "scale": "\n".join(markdown(["runner", "component", "seconds, 6,000 -> 60,000 images",
                                          "peak memory MB (process tree)"], scale_rows(), "--rr")),
            "mixmatch-fashion-curve": "\n".join(markdown(
                ["step", "supervised-only: test accuracy", "MixMatch: test accuracy",
                 "MixMatch: guesses right", "MixMatch: guesses wrong yet sharpened past 0.9"],
                mixmatch_fashion_curve_rows(), "-rrrr")),
            "families-fashion": "\n".join(markdown(
                ["family", "parameters", "epochs", "train s", "test accuracy (10,000)",
                 "int8 vs float, TFLite Micro (first 2,000 test images)", "int8 KiB", "arena KiB",
                 "fits 1 MiB / 256 KiB"], fashion_families_rows(), "-rrrrrrr-")),
        },
    }


def _pattern(name: str) -> re.Pattern:
    return re.compile(re.escape(f"<!-- results: {name} -->\n") + "(.*?)" + re.escape(END), re.S)


def stale() -> list[str]:
    """The blocks whose text differs from what the results files give now."""
    out = []
    for path, named in blocks().items():
        text = path.read_text()
        for name, table in named.items():
            found = _pattern(name).search(text)
            if found is None or found.group(1) != table + "\n":
                out.append(f"{path.name}: {name}")
    return out


def main(check: bool = False) -> None:
    if check:
        problems = stale()
        print("stale: " + ", ".join(problems) if problems else "every results table is up to date")
        raise SystemExit(1 if problems else 0)
    for path, named in blocks().items():
        text = path.read_text()
        for name, table in named.items():
            text = _pattern(name).sub(lambda _: f"<!-- results: {name} -->\n{table}\n{END}", text)
        path.write_text(text)
    print("\n".join(blocks()[BENCH / "README.md"]["bench"].splitlines()))


if __name__ == "__main__":
    import sys

    main(check="--check" in sys.argv[1:])
