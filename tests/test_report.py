"""kdtf.report renders report.md and plot.png from a stored report.json.

``fixtures/report.json`` is the report of a real run, written by
``scripts/distill.py --teacher-epochs 2 --epochs 4 --prune-epochs 2 --qat-epochs 1
--latency-runs 20 --verbose 0`` (mnist5k, seed 0); regenerate it the same way when the
report's format changes.
"""

import json
import os
import shutil

import pytest

from kdtf.report import load_report, render_markdown, write_report

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "report.json")


def test_renders_markdown_and_png_from_a_stored_report(tmp_path):
    shutil.copy(FIXTURE, tmp_path / "report.json")
    report = load_report(str(tmp_path))
    write_report(report, str(tmp_path))
    markdown = (tmp_path / "report.md").read_text()
    for stage in report["stages"]:
        assert f"| {stage['stage']} | {100 * stage['accuracy']:.2f} % |" in markdown
    assert "![accuracy against size and latency](plot.png)" in markdown
    assert (tmp_path / "plot.png").stat().st_size > 10_000
    assert sorted(os.listdir(tmp_path)) == ["plot.png", "report.json", "report.md"]


def test_markdown_states_how_figures_were_measured():
    with open(FIXTURE) as f:
        text = render_markdown(json.load(f))
    assert "median (p90)" in text and "LiteRT" in text and "Wall time" in text
    assert "Only 500 training labels kept" in text and "other 3499 examples without labels" in text
    assert "**Distillation over scratch:" in text


def test_the_export_fidelity_line_names_the_keras_model_the_tflite_was_converted_from():
    with open(FIXTURE) as f:
        report = json.load(f)
    assert "Export fidelity" not in render_markdown(report)  # a report written before converted_from
    report["stages"][-1].update(converted_from="student_pruned_qat.h5", snr_db_against_keras=41.27)
    text = render_markdown(report)
    assert ("`student_int8.tflite` against `student_pruned_qat.h5`, the Keras model it was converted from: "
            "top-1 agreement 100.00 %, output SNR 41.3 dB") in text
    report["stages"][-1]["snr_db_against_keras"] = None  # equal outputs
    assert "output SNR exact" in render_markdown(report)


def test_the_latency_note_names_threads_delegate_runtime_and_machine():
    with open(FIXTURE) as f:
        report = json.load(f)
    report["machine"].update(cpu="Test CPU @ 2.0GHz", litert="2.3.0")
    text = render_markdown(report)
    assert "1 thread, XNNPACK delegate" in text and "LiteRT 2.3.0" in text
    assert "on this run's machine (Test CPU @ 2.0GHz, " in text
    report["machine"].pop("cpu"), report["machine"].pop("litert")  # a report written before these fields
    assert "on this run's machine (" in render_markdown(report)


def test_load_report_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="No report found"):
        load_report(str(tmp_path))
    bad = tmp_path / "report.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_report(str(bad))


def test_plot_names_stages_in_a_legend_never_in_overlapping_text():
    import matplotlib.pyplot as plt

    from kdtf.report import plot_figure

    with open(FIXTURE) as f:
        report = json.load(f)
    for stage in report["stages"]:  # every point on the same spot: annotations would pile up
        stage.update(size_bytes=1000, latency_ms=0.01, accuracy=0.9)
    fig = plot_figure(report)
    assert all(not ax.texts for ax in fig.axes)
    labels = [text.get_text() for legend in fig.legends for text in legend.get_texts()]
    assert len(labels) == len(report["stages"]) and labels[0].startswith(report["stages"][0]["stage"])
    plt.close(fig)


def test_a_run_with_latency_runs_0_says_not_timed_and_plots_the_size_panel_only():
    import matplotlib.pyplot as plt

    from kdtf.report import plot_figure

    with open(FIXTURE) as f:
        report = json.load(f)
    report["config"]["latency_runs"] = 0
    for stage in report["stages"]:
        stage.update(latency_ms=None, latency_p90_ms=None)
    text = render_markdown(report)
    assert "Latency not timed (`--latency-runs 0`)" in text and "median (p90)" not in text
    assert all(f"| {stage['stage']} |" in text and text.count("| not timed |") == len(report["stages"]) for stage in report["stages"])
    fig = plot_figure(report)
    assert len(fig.axes) == 1 and fig.axes[0].get_xlabel().startswith("file size")
    plt.close(fig)


def test_entropy_coded_size_shows_in_the_table_and_as_hollow_points_of_the_size_panel():
    import matplotlib.pyplot as plt

    from kdtf.report import plot_figure

    with open(FIXTURE) as f:
        report = json.load(f)
    last = report["stages"][-1]
    last.update(entropy_coded_bytes=last["size_bytes"] // 2, entropy_bound_bytes=last["size_bytes"] / 3)
    text = render_markdown(report)
    assert "entropy-coded (KB)" in text and f"| {last['entropy_coded_bytes'] / 1024:.1f} |" in text
    assert "| - |" in text  # stages saved as .keras have none
    fig = plot_figure(report)
    assert "hollow: weights entropy-coded" in fig.axes[0].get_xlabel()
    assert len(fig.axes[0].collections) == len(report["stages"]) + 1
    labels = [text.get_text() for legend in fig.legends for text in legend.get_texts()]
    assert len(labels) == len(report["stages"])
    plt.close(fig)
