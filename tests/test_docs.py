"""Every Python code block of the guides runs, so the docs cannot drift from the code.

Each page's ```python blocks run in order in one namespace (a page reads like one
session), after the page's hidden setup: an HTML comment ``<!-- setup ... -->`` that
builds tiny data and models, invisible on the site. A page may also say
``<!-- test: "60 epochs" -> "1 epochs" -->``: that literal text of its code is replaced
before the run (a long schedule shown to the reader, a short one tested). Each page runs
in its own namespace and temporary folder; the pages share one Python process per half
(TensorFlow starts twice, not once per page), with the Keras session cleared between.
"""

import json
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


_RUNNER = """
import json, os, runpy, sys, traceback
results = {}
for script in sys.argv[2:]:
    os.chdir(os.path.dirname(script))
    try:
        runpy.run_path(script, run_name="__main__")
        results[script] = None
    except SystemExit as stop:
        results[script] = None if stop.code in (None, 0) else f"SystemExit({stop.code!r})"
    except BaseException:
        results[script] = traceback.format_exc()[-3000:]
    finally:
        if "tf_keras" in sys.modules:
            sys.modules["tf_keras"].backend.clear_session()
with open(sys.argv[1], "w") as f:
    json.dump(results, f)
"""


def run_pages(pages, root):
    """Runs each page's program in its own folder and namespace, all in one Python process
    (TensorFlow starts once): ``{page name: None, or the end of its traceback}``."""
    scripts = []
    for page in pages:
        folder = root / page.stem
        folder.mkdir(parents=True)
        scripts.append(folder / f"{page.stem}.py")
        scripts[-1].write_text(page_code(page), encoding="utf-8")
    (root / "run_pages.py").write_text(_RUNNER, encoding="utf-8")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(DOCS.parent))
    out = root / "results.json"
    done = subprocess.run(
        [sys.executable, str(root / "run_pages.py"), str(out), *map(str, scripts)],
        capture_output=True, text=True, timeout=1200, cwd=root, env=env,
    )
    assert done.returncode == 0 and out.exists(), f"the page runner failed:\n{done.stderr[-3000:]}"
    results = json.loads(out.read_text())
    return {pathlib.Path(script).stem + ".md": error for script, error in results.items()}


# Two halves, so the two test workers share the pages; each half starts TensorFlow once.
@pytest.mark.slow
@pytest.mark.parametrize("half", [0, 1])
def test_docs_pages_code_runs(half, tmp_path):
    pages = _pages()[half::2]
    failed = {name: error for name, error in run_pages(pages, tmp_path).items() if error}
    assert not failed, "\n\n".join(f"{name}:\n{error}" for name, error in failed.items())
    assert len(pages) >= 2


def test_a_failing_page_is_reported_by_name_and_the_others_still_run(tmp_path):
    good, bad = tmp_path / "good.md", tmp_path / "bad.md"
    good.write_text("```python\nopen('ran', 'w').write('yes')\n```\n", encoding="utf-8")
    bad.write_text("```python\nraise ValueError('broken example')\n```\n", encoding="utf-8")
    results = run_pages([bad, good], tmp_path / "run")
    assert "broken example" in results["bad.md"] and results["good.md"] is None
    assert (tmp_path / "run" / "good" / "ran").read_text() == "yes"
