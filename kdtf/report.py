"""``report.json``, ``report.md`` and ``plot.png`` for a run folder."""

import dataclasses
import json
import os
import platform

from kdtf import __version__
from kdtf._keras import tf
from kdtf.export.entropy import size_fields
from kdtf.export.litert import runtime_version
from kdtf.export.profile import render_profile
from kdtf.export.ptq import layer_error_table
from kdtf.io import atomic_path, gzip_size, write_text
from kdtf.split_sizes import small_split_warning, split_sizes_line

__all__ = ["run_report", "merge_sections", "write_report", "render_markdown", "render_summary", "render_plot", "load_report", "report_header", "stage_record",
           "per_image", "weaker_teacher_line", "export_fidelity_line"]

_COLUMNS = ("stage", "test accuracy", "measured on", "params", "file", "size (KB)", "gzip (KB)", "entropy-coded (KB)", "sparsity", "latency ms/image (p90)")


def cpu_name():
    """The CPU's model name (``/proc/cpuinfo``, else :func:`platform.processor`), or "unknown CPU"."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def latency_note(config, machine):
    """What the latency column measured: model, invocations, threads, delegate, machine."""
    if not config["latency_runs"]:
        return "Latency not timed (`--latency-runs 0`). "
    where = f"{machine.get('cpus')} CPUs"
    if machine.get("cpu"):
        where = f"{machine['cpu']}, {where}"
    runtime = f"LiteRT {machine['litert']}" if machine.get("litert") else "LiteRT"
    return (f"Latency: median (p90) ms per image over {config['latency_runs']} batch-1 invocations of each stage's "
            f"`.tflite` (for Keras stages, that stage's float32 export) on {runtime}, 1 thread, XNNPACK delegate "
            f"(LiteRT's default), on this run's machine ({where}); the same file on a phone differs. ")


def report_header(config, strategy_text=None):
    """What every report starts with: kdtf's version, the run's settings, the machine."""
    machine = {"cpus": os.cpu_count(), "cpu": cpu_name(), "tensorflow": tf.__version__, "litert": runtime_version()}
    if strategy_text is not None:
        machine["strategy"] = strategy_text
    return {"kdtf_version": __version__, "config": dataclasses.asdict(config), "machine": machine}


def merge_sections(records):
    """The report sections of ``records`` (each a :class:`kdtf.stages.Record`) merged in
    order: a list is appended to the lists of the other records under the same key (the
    stage table's ``"stages"`` rows), a dict merged into theirs, anything else set."""
    sections = {}
    for record in records:
        for key, value in record.report_sections().items():
            if isinstance(value, list):
                sections.setdefault(key, []).extend(value)
            elif isinstance(value, dict):
                sections.setdefault(key, {}).update(value)
            else:
                sections[key] = value
    return sections


def run_report(config, data, records, timings, strategy_text=None):
    """The report dict of a finished run: the header, the ``data`` section, what the
    stages' ``records`` add (:func:`merge_sections`: the stage rows with how each was
    measured, the compression steps, what the .tflite was verified to keep) and the
    ``timings``. It names no stage: a new stage's record brings its own sections."""
    return dict(report_header(config, strategy_text), data=data, **merge_sections(records), timings=timings)


def stage_record(name, accuracy, measured_on, params, path, sparsity, timing, latency_measured_on):
    """One row of the stage table: accuracy, parameters, file size (raw and gzip),
    sparsity and LiteRT latency (median and p90 ms/image)."""
    return {
        "stage": name,
        "accuracy": float(accuracy),
        "accuracy_measured_on": measured_on,
        "params": int(params),
        "file": os.path.basename(path),
        "size_bytes": os.path.getsize(path),
        "gzip_bytes": gzip_size(path),
        **size_fields(path),  # .tflite: weights entropy-coded (kdtf.export.entropy_coded_size)
        "sparsity": float(sparsity),
        "latency_ms": timing["median_ms"] if timing else None,
        "latency_p90_ms": timing["p90_ms"] if timing else None,
        "latency_measured_on": latency_measured_on,
    }


def per_image(timing):
    """A latency measurement as log text; ``None`` (``--latency-runs 0``) as "latency not timed"."""
    return f"{timing['median_ms']:.3f} ms/image" if timing else "latency not timed"


def _row(stage):
    return (
        stage["stage"],
        f"{100 * stage['accuracy']:.2f} %",
        stage["accuracy_measured_on"],
        f"{stage['params']:,}",
        stage["file"],
        f"{stage['size_bytes'] / 1024:.1f}",
        f"{stage['gzip_bytes'] / 1024:.1f}",
        "-" if stage.get("entropy_coded_bytes") is None else f"{stage['entropy_coded_bytes'] / 1024:.1f}",
        f"{100 * stage['sparsity']:.1f} %",
        "not timed" if stage["latency_ms"] is None else f"{stage['latency_ms']:.3f} ({stage['latency_p90_ms']:.3f})",
    )


def _gain_line(report):
    accuracy = {s["stage"]: s["accuracy"] for s in report["stages"]}
    if "distilled" not in accuracy or "scratch" not in accuracy:
        return ""
    gain = 100 * (accuracy["distilled"] - accuracy["scratch"])
    gap = 100 * (accuracy.get("teacher", accuracy["distilled"]) - accuracy["scratch"])
    closed = f", {gain / gap:.0%} of the scratch-to-teacher gap" if gap > 0 else ""
    return (
        f"**Distillation over scratch: {gain:+.2f} points** on the test split ({accuracy['scratch']:.2%} "
        f"-> {accuracy['distilled']:.2%}{closed}); one run, seed {report['config']['seed']} "
        "(`benchmarks/labels_sweep.py` measures the spread over seeds)."
    )


def export_fidelity_line(report):
    """How close each ``.tflite`` is to the Keras model it was converted from (its row's
    ``converted_from``), or "" for reports without that field."""
    parts = []
    for s in report["stages"]:
        if not s.get("converted_from") or s.get("agreement_with_keras") is None:
            continue
        snr = s.get("snr_db_against_keras")
        parts.append(f"`{s['file']}` against `{s['converted_from']}`, the Keras model it was converted from: top-1 agreement "
                     f"{100 * s['agreement_with_keras']:.2f} %, output SNR " + ("exact" if snr is None else f"{snr:.1f} dB"))
    if not parts:
        return ""
    return ("Export fidelity (test split, logits; SNR = 10 log10(sum(keras^2) / sum((tflite - keras)^2)), int8 "
            "outputs dequantized with their own scale and zero point): " + "; ".join(parts) + ".")


def _split_lines(report):
    """Under the stage table: the split sizes, the small-split warning of the run, and a
    warning when the teacher is below the scratch student."""
    data, config = report["data"], report["config"]
    fractions = {split: config[f"{split}_fraction"] for split in ("val", "test") if f"{split}_fraction" in config}
    warnings = [small_split_warning(data.get("small_splits"), fractions if len(fractions) == 2 else None), weaker_teacher_line(report)]
    return [split_sizes_line(data)] + [line for line in warnings if line]


def weaker_teacher_line(report):
    """One line when the teacher scored below the scratch student on the test split
    (``None`` otherwise): distilling from it teaches its mistakes."""
    accuracy = {s["stage"]: s["accuracy"] for s in report["stages"]}
    if "teacher" not in accuracy or "scratch" not in accuracy or accuracy["teacher"] >= accuracy["scratch"]:
        return None
    return (f"warning: the teacher ({accuracy['teacher']:.1%}) is below the scratch student ({accuracy['scratch']:.1%}) on the "
            "test split, so distillation copies a weaker model. Fixes: a pretrained teacher (--teacher BACKBONE --teacher-weights "
            "FILE, or --teacher PATH.keras trained on more data), --augment flip,crop, more --teacher-epochs.")


_SUMMARY_COLUMNS = ("stage", "accuracy", "measured on", "size (KB)", "latency ms/image")


def render_summary(report, folder):
    """The run's result table as plain text for the terminal, then where its files are:
    what ``kdtf distill`` prints when it ends (``report.md`` has the full table)."""
    rows = [
        (s["stage"], f"{100 * s['accuracy']:.2f} %", s["accuracy_measured_on"], f"{s['size_bytes'] / 1024:.1f}",
         "not timed" if s["latency_ms"] is None else f"{s['latency_ms']:.3f}")
        for s in report["stages"]
    ]
    widths = [max(len(str(r[i])) for r in rows + [_SUMMARY_COLUMNS]) for i in range(len(_SUMMARY_COLUMNS))]
    line = lambda cells: "  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    shipped = [n for n in ("student_int8.tflite", "labels.txt", "model_card.json") if os.path.exists(os.path.join(folder, n))]
    lines = [line(_SUMMARY_COLUMNS), line(["-" * w for w in widths])] + [line(r) for r in rows] + _split_lines(report)
    lines += ["", f"run folder: {folder}  (report.md, report.json, plot.png; tensorboard --logdir {os.path.join(folder, 'logs')})"]
    if shipped:
        lines.append(f"for Android: {', '.join(shipped)}")
    return "\n".join(lines)


def render_markdown(report):
    """The Markdown report: the stage table, then how each figure was measured."""
    lines = [f"# kdtf run: {report['data']['name']}", "", "![accuracy against size and latency](plot.png)", ""]
    lines.append("| " + " | ".join(_COLUMNS) + " |")
    lines.append("|" + "|".join("---" for _ in _COLUMNS) + "|")
    lines += ["| " + " | ".join(_row(s)) + " |" for s in report["stages"]]
    lines += [""] + _split_lines(report)
    config, data, timings = report["config"], report["data"], report["timings"]
    lines += [
        "",
        f"Data: {data['name']}, {data['train']} train / {data['val']} val / {data['test']} test "
        f"examples, inputs normalised as `{data['normalization']}`. Seed {config['seed']}."
        + (
            f" Only {data['labelled']} training labels kept: teacher and scratch learn from "
            f"those; distillation also uses the other {data['train'] - data['labelled']} "
            "examples without labels."
            if data["labelled"] < data["train"] else ""
        ),
        _gain_line(report),
        f"Distillation: T = {config['temperature']}, alpha = {config['alpha']}; student epochs {config['epochs']}."
        + (f" Compression (each step fine-tuned by distillation): {report['compression']}." if report.get("compression") else ""),
        export_fidelity_line(report),
        "Accuracy is on the test split; `litert` means measured through the LiteRT "
        "interpreter on the exported file. "
        + latency_note(config, report["machine"])
        + "Entropy-coded: the .tflite with its weight tensors range-coded, each under its own value histogram "
        "(header included, raw where coding would not shrink it; `kdtf.export.entropy_coded_size`). "
        + "Sparsity: zeros among Conv/Dense kernels "
        "(Keras) or among weight tensors of the flatbuffer (TFLite).",
        f"Wall time: {timings['total_s']:.0f} s on {report['machine']['cpus']} CPUs "
        + "(" + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in timings.items() if k != "total_s") + ").",
        "",
    ]
    if report.get("latency_profile"):  # float32 against int8: XNNPACK coverage, per-op time
        lines += render_profile(report["latency_profile"])
    if report.get("layer_errors"):  # post-training quantization: where the error comes from
        lines += [
            "## Per-op error of the quantized file against float (LiteRT, worst SNR first)", "",
            layer_error_table(report["layer_errors"], limit=10),
        ]
    return "\n".join(lines)


def render_plot(report, path):
    """Accuracy against size (log scale) and against latency, one point per stage told
    apart by colour and marker in a legend (labels never overlap, whatever the
    values), written atomically to ``path`` (PNG)."""
    import matplotlib.pyplot as plt

    fig = plot_figure(report)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def plot_figure(report):
    """The matplotlib figure of :func:`render_plot`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = report["stages"]
    timed = all(s["latency_ms"] is not None for s in stages)  # --latency-runs 0: the size panel only
    fig, axes = plt.subplots(1, 2 if timed else 1, figsize=(11 if timed else 6, 4.8), constrained_layout=True, squeeze=False)
    axes = axes[0]
    coded = any(s.get("entropy_coded_bytes") for s in stages)
    size_label = "file size (KB, log scale" + ("; hollow: weights entropy-coded)" if coded else ")")
    panels = [(axes[0], [s["size_bytes"] / 1024 for s in stages], size_label)]
    if timed:
        panels.append((axes[1], [s["latency_ms"] * 1000 for s in stages], "latency per image (µs, LiteRT, 1 thread, log scale)"))
    accuracy = [100 * s["accuracy"] for s in stages]
    colors, markers = plt.cm.tab10.colors, "osD^vP*Xh<>"
    low, high = min(accuracy), max(accuracy)
    pad = max(1.0, 0.15 * (high - low))
    for ax, xs, label in panels:
        for i, (x, y, stage) in enumerate(zip(xs, accuracy, stages)):
            measured = "LiteRT" if stage["accuracy_measured_on"] == "litert" else "Keras"
            ax.scatter(x, y, s=80, color=colors[i % 10], marker=markers[i % len(markers)], zorder=3,
                       edgecolors="black", linewidths=0.5, label=f"{stage['stage']} ({measured})")
            if ax is axes[0] and stage.get("entropy_coded_bytes"):  # hollow: the same file, weights entropy-coded
                ax.scatter(stage["entropy_coded_bytes"] / 1024, y, s=80, facecolors="none", edgecolors=colors[i % 10],
                           marker=markers[i % len(markers)], zorder=3, label="_coded")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_ylim(low - pad, high + pad)
        coded = [s["entropy_coded_bytes"] / 1024 for s in stages if s.get("entropy_coded_bytes")] if ax is axes[0] else []
        ax.set_xlim(min(xs + coded) / 1.8, max(xs) * 1.8)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(stages), 5), fontsize=9, frameon=False)
    fig.suptitle(f"kdtf run on {report['data']['name']}: accuracy kept for size and latency shed (accuracy measured on Keras or LiteRT)",
                 fontsize=10)
    return fig


def write_report(report, folder):
    """Writes ``report.json``, ``report.md`` and ``plot.png`` atomically into ``folder``."""
    write_text(os.path.join(folder, "report.json"), json.dumps(report, indent=2) + "\n")
    write_text(os.path.join(folder, "report.md"), render_markdown(report))
    render_plot(report, os.path.join(folder, "plot.png"))


def load_report(path):
    """Reads a ``report.json`` (or the one inside a run folder)."""
    if os.path.isdir(path):
        path = os.path.join(path, "report.json")
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise ValueError(f"No report found at {path!r}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path!r} is not valid JSON: {error}") from None
