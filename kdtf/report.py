"""``report.json`` and ``report.md`` for a run folder."""

import json
import os

from kdtf.io import write_text

__all__ = ["write_report", "render_markdown", "load_report"]

_COLUMNS = ("stage", "test accuracy", "measured on", "params", "file", "size (KB)", "gzip (KB)", "sparsity", "latency ms/image (p90)")


def _row(stage):
    return (
        stage["stage"],
        f"{100 * stage['accuracy']:.2f} %",
        stage["accuracy_measured_on"],
        f"{stage['params']:,}",
        stage["file"],
        f"{stage['size_bytes'] / 1024:.1f}",
        f"{stage['gzip_bytes'] / 1024:.1f}",
        f"{100 * stage['sparsity']:.1f} %",
        f"{stage['latency_ms']:.3f} ({stage['latency_p90_ms']:.3f})",
    )


def render_markdown(report):
    """The Markdown report: the stage table, then how each figure was measured."""
    lines = [f"# kdtf run: {report['data']['name']}", ""]
    lines.append("| " + " | ".join(_COLUMNS) + " |")
    lines.append("|" + "|".join("---" for _ in _COLUMNS) + "|")
    lines += ["| " + " | ".join(_row(s)) + " |" for s in report["stages"]]
    config, data, timings = report["config"], report["data"], report["timings"]
    lines += [
        "",
        f"Data: {data['name']}, {data['train']} train / {data['val']} val / {data['test']} test "
        f"examples, inputs normalised as `{data['normalization']}`. Seed {config['seed']}.",
        f"Distillation: T = {config['temperature']}, alpha = {config['alpha']}; "
        f"student epochs {config['epochs']}, pruning to {config['sparsity']:.0%} for "
        f"{config['prune_epochs']} epochs, QAT {'on' if config['qat'] else 'off'} "
        f"({config['qat_epochs']} epochs).",
        "Accuracy is on the test split; `litert` means measured through the LiteRT "
        "interpreter on the exported file. Latency: median (p90) over "
        f"{config['latency_runs']} batch-1 invocations on LiteRT with 1 thread; for Keras "
        "stages, of that stage's TFLite export. Sparsity: zeros among Conv/Dense kernels "
        "(Keras) or among weight tensors of the flatbuffer (TFLite).",
        f"Wall time: {timings['total_s']:.0f} s on {report['machine']['cpus']} CPUs "
        + "(" + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in timings.items() if k != "total_s") + ").",
        "",
    ]
    return "\n".join(lines)


def write_report(report, folder):
    """Writes ``report.json`` and ``report.md`` atomically into ``folder``."""
    write_text(os.path.join(folder, "report.json"), json.dumps(report, indent=2) + "\n")
    write_text(os.path.join(folder, "report.md"), render_markdown(report))


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
