"""The ``kdtf`` command and the run folder's name."""

import os
import subprocess
import sys

import pytest

from kdtf.commands import COMMANDS, main
from kdtf.config import run_slug


def test_kdtf_without_a_subcommand_lists_them_and_an_unknown_one_is_refused(capsys):
    assert main([]) == 2
    assert "kdtf distill" in capsys.readouterr().out
    assert main(["--help"]) == 0
    assert main(["distil"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'distil'" in err and "distill" in err and len(err.strip().splitlines()) == 1


def test_every_subcommand_is_a_module_with_main():
    import importlib

    for module in set(COMMANDS.values()):
        assert callable(importlib.import_module(module).main)


@pytest.mark.parametrize("command", [["kdtf"], [sys.executable, "-m", "kdtf"]], ids=["console-script", "python-m"])
def test_kdtf_distill_help_answers_without_tensorflow(command):
    if command == ["kdtf"]:
        command = [os.path.join(os.path.dirname(sys.executable), "kdtf")]
        if not os.path.exists(command[0]):
            pytest.fail("the kdtf console script is not installed next to this Python: pip install -e .")
    done = subprocess.run(command + ["distill", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: kdtf distill") and "compression and export" in done.stdout
    assert "tensorflow" not in done.stderr.lower()


@pytest.mark.parametrize(
    "dataset, slug",
    [
        ("mnist5k", "mnist5k"),
        ("folder:/data/photos", "folder-photos"),
        ("folder:/data/photos/", "folder-photos"),
        ("folder:~/my pets", "folder-my-pets"),
        ("tfds:cifar10:3.0.2", "tfds-cifar10-3.0.2"),
        ("cluttered", "cluttered"),
    ],
)
def test_run_folder_names_have_no_colon_slash_or_space(dataset, slug):
    assert run_slug(dataset) == slug


def test_a_bad_value_of_a_renamed_flag_names_the_flag_the_user_typed(capsys):
    assert main(["distill", "--lr", "-1", "--output", "/nonexistent/never-written"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: Expected learning_rate (--lr) > 0. Received: learning_rate=-1.0"
