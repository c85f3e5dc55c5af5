"""Every Python code block of the guides runs, so the docs cannot drift from the code.

Each page's ```python blocks run in order in one namespace (a page reads like one
session), after the page's hidden setup: an HTML comment ``<!-- setup ... -->`` that
builds tiny data and models, invisible on the site. Pages run in a temporary folder.
"""

import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
SETUP = re.compile(r"^<!-- setup\n(.*?)^-->", re.MULTILINE | re.DOTALL)


def _pages():
    return sorted(p for p in DOCS.glob("*.md") if BLOCK.search(p.read_text(encoding="utf-8")))


def page_code(path):
    """The setup and the Python blocks of a page, in order, as one program."""
    text = path.read_text(encoding="utf-8")
    return "\n".join(SETUP.findall(text) + BLOCK.findall(text))


def test_docs_pages_with_code_are_found():
    assert len(_pages()) >= 5


@pytest.mark.slow
@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_docs_page_code_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = compile(page_code(page), str(page), "exec")
    exec(code, {"__name__": f"docs_{page.stem}"})
