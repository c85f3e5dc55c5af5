"""`import kdtf` alone reaches every public submodule (loaded on first use)."""

import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "kdtf"
PUBLIC = sorted(
    p.stem if p.is_file() else p.name
    for p in PACKAGE.iterdir()
    if not p.name.startswith("_") and (p.suffix == ".py" or (p / "__init__.py").is_file())
)


@pytest.mark.slow
def test_import_kdtf_alone_reaches_every_public_submodule():
    code = f"import kdtf\nfor name in {PUBLIC!r}:\n    assert getattr(kdtf, name).__name__ == 'kdtf.' + name, name\nprint('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]
    assert "saving" in PUBLIC and "pipeline" in PUBLIC


def test_an_unknown_attribute_is_still_an_attribute_error():
    import kdtf

    with pytest.raises(AttributeError, match="no attribute 'not_a_module'"):
        _ = kdtf.not_a_module
