"""Helpers shared by the scripts: YAML defaults, argument saving, clean error exits."""

import functools
import os
import sys

__all__ = ["load_yaml_defaults", "exit_on_error", "save_args", "ArgumentParser", "log", "keras_verbosity", "resume_args"]


import argparse  # noqa: E402


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (not the full usage block) and exit code 2."""

    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")


def load_yaml_defaults(path, valid_keys):
    """Reads a YAML mapping of defaults; rejects unknown keys with the valid ones listed."""
    import yaml

    try:
        with open(path) as f:
            values = yaml.safe_load(f)
    except FileNotFoundError:
        raise ValueError(f"Config file not found: {path!r}") from None
    except yaml.YAMLError as error:
        raise ValueError(f"Config file {path!r} is not valid YAML: {str(error).splitlines()[0]}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(
            f"Config file {path!r} must hold a mapping of option: value, "
            f"received a {type(values).__name__}."
        )
    values = {str(k).replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(values) - set(valid_keys))
    if unknown:
        raise ValueError(
            f"Unknown key(s) in {path!r}: {unknown}. Valid keys: {', '.join(sorted(valid_keys))}"
        )
    return values


def save_args(args, folder):
    """Writes the final arguments to ``folder/args.yaml`` atomically."""
    import yaml

    from kdtf.io import write_text

    write_text(os.path.join(folder, "args.yaml"), yaml.safe_dump(dict(args), sort_keys=True))


def exit_on_error(main):
    """Turns expected errors into a short message and exit code 2, without a traceback."""

    @functools.wraps(main)
    def wrapper(argv=None):
        from kdtf.callbacks import NonFiniteLossError

        try:
            return main(argv)
        except (ValueError, NonFiniteLossError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper




def log(message):
    """A progress line of a run: ``[kdtf] message``, flushed."""
    print(f"[kdtf] {message}", flush=True)


def keras_verbosity(verbose):
    """``verbose`` if set (>= 0), else progress bars on a terminal and a line per epoch
    in a log file."""
    if verbose >= 0:
        return verbose
    return 1 if sys.stdout.isatty() else 2


def resume_args(run_dir, argv, valid_keys):
    """The arguments a run folder was started with (``RUN_DIR/args.yaml``), for
    ``--resume RUN_DIR``; refuses other flags than ``--resume`` and ``--verbose``."""
    given = [a for a in argv if a.startswith("--") and a.split("=")[0] not in ("--resume", "--verbose")]
    if given:
        raise ValueError(f"--resume continues a run with its saved arguments; drop the other flags ({', '.join(given)}).")
    saved = os.path.join(run_dir, "args.yaml")
    if not os.path.isfile(saved):
        raise ValueError(f"Cannot resume {run_dir!r}: no args.yaml there (not a kdtf run folder).")
    return load_yaml_defaults(saved, valid_keys)
