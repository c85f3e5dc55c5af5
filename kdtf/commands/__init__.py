"""The ``kdtf`` command: one entry point for the scripts.

    kdtf distill [flags]        distil, compress and export (``python scripts/distill.py``)
    kdtf byol [flags]           BYOL teacher, label-free distillation (``scripts/byol.py``)
    kdtf bench-tflite FILE      size, ops, latency and accuracy of a .tflite (alias: export)
    kdtf report RUN_DIR         print a run's result table (and render report.md, plot.png again)

Each subcommand takes the flags of its script (``kdtf distill --help``). Light: nothing
heavy is imported before a subcommand's own flags are checked.
"""

import importlib
import sys

__all__ = ["COMMANDS", "main"]

COMMANDS = {
    "distill": "kdtf.commands.distill",
    "byol": "kdtf.commands.byol",
    "bench-tflite": "kdtf.commands.bench_tflite",
    "export": "kdtf.commands.bench_tflite",
    "report": "kdtf.commands.report",
}


def main(argv=None):
    """``kdtf SUBCOMMAND [flags]``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        listing = __doc__.split("\n\n")[1]
        print(f"usage: kdtf {{{','.join(COMMANDS)}}} [flags]   (kdtf SUBCOMMAND --help for its flags)\n\n{listing}")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}. Expected one of: {', '.join(COMMANDS)} (see kdtf --help)", file=sys.stderr)
        return 2
    sys.argv[0] = f"kdtf {name}"
    return importlib.import_module(COMMANDS[name]).main(rest)
