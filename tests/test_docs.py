"""Every Python code block of the guides runs, so the docs cannot drift from the code.

Each page's ```python blocks run in order in one namespace (a page reads like one
session), after the page's hidden setup: an HTML comment ``<!-- setup ... -->`` that
builds tiny data and models, invisible on the site. A page may also say
``<!-- test: "60 epochs" -> "1 epochs" -->``: that literal text of its code is replaced
before the run (a long schedule shown to the reader, a short one tested). Each page runs
in its own Python process (a page may register a term or set a Keras global) in a
temporary folder.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
SETUP = re.compile(r"^<!-- setup\n(.*?)^-->", re.MULTILINE | re.DOTALL)
REPLACE = re.compile(r'^<!-- test: "(.*?)" -> "(.*?)" -->$', re.MULTILINE)


def _pages():
    return sorted(p for p in DOCS.glob("*.md") if BLOCK.search(p.read_text(encoding="utf-8")))


def page_code(path):
    """The setup and the Python blocks of a page, in order, as one program."""
    text = path.read_text(encoding="utf-8")
    code = "\n".join(SETUP.findall(text) + BLOCK.findall(text))
    for old, new in REPLACE.findall(text):
        if old not in code:
            raise ValueError(f"{path.name}: the test replacement {old!r} is not in the page's code")
        code = code.replace(old, new)
    return code


def test_docs_pages_with_code_are_found():
    assert len(_pages()) >= 5


@pytest.mark.slow
@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_docs_page_code_runs(page, tmp_path):
    script = tmp_path / f"{page.stem}.py"
    script.write_text(page_code(page), encoding="utf-8")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(DOCS.parent))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert done.returncode == 0, f"{page.name}:\n{done.stderr[-3000:]}"
