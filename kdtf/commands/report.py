"""Print a run's result table, and render its report.md and plot.png again from report.json.

    kdtf report saved_models/mnist5k-20261123-210000
"""

import argparse
import os

from kdtf.cli import ArgumentParser, exit_on_error


@exit_on_error
def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="run folder holding report.json")
    args = parser.parse_args(argv)
    from kdtf.report import load_report, render_summary, write_report

    report = load_report(args.run_dir)
    if not isinstance(report, dict) or not isinstance(report.get("stages"), list):
        raise ValueError(f"{args.run_dir!r}: report.json has no 'stages' list; it was not written by kdtf.")
    write_report(report, args.run_dir)
    print(render_summary(report, args.run_dir))
    print(f"wrote {os.path.join(args.run_dir, 'report.md')} and plot.png")
    return 0

