"""MkDocs hooks: the benchmark tables and plots come from the results files, never copied.

* ``<!-- include: benchmarks/results/X/table.md -->`` on a line of its own is replaced by
  that file's text when the page is built (a missing file fails the strict build).
* Every ``benchmarks/results/**/*.png`` is published under ``results/`` so a page can show
  ``![...](results/X/plot.png)``.
"""

import pathlib
import re

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
INCLUDE = re.compile(r"^<!-- include: (?P<path>\S+) -->$", re.MULTILINE)


def on_files(files, config):
    for png in sorted(RESULTS.rglob("*.png")):
        uri = "results/" + png.relative_to(RESULTS).as_posix()
        files.append(File.generated(config, uri, abs_src_path=str(png)))
    return files


IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<target>[^):/]+\.png)\)")


def _include(match):
    path = ROOT / match.group("path")
    if not path.is_file():
        raise PluginError(f"A docs page includes {match.group('path')}, which does not exist. Run the benchmark that writes it.")
    text = path.read_text(encoding="utf-8").strip()
    if RESULTS in path.parents:  # a plot beside the results file is published under results/
        folder = path.parent.relative_to(RESULTS).as_posix()
        text = IMAGE.sub(lambda m: f"![{m.group('alt')}](results/{folder}/{m.group('target')})", text)
    return text + f"\n\n<small>From `{match.group('path')}`.</small>\n"


def on_page_markdown(markdown, page, config, files):
    return INCLUDE.sub(_include, markdown)
