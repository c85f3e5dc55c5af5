"""What the scripts share: flags built from a config dataclass, YAML defaults, argument
saving, clean error exits, progress lines.

Light on purpose (no TensorFlow): ``--help`` and flag errors answer at once, before
TensorFlow loads.
"""

import argparse
import collections
import dataclasses
import functools
import logging
import os
import re
import sys

from kdtf.io import write_text

__all__ = ["ArgumentParser", "parse_config", "load_yaml_defaults", "exit_on_error", "save_args", "log",
           "keras_verbosity", "resume_args", "load_tensorflow", "show_library_logs", "validated", "VERBOSE_HELP"]

VERBOSE_HELP = "Keras verbosity: 0 silent, 1 progress bars, 2 one line per epoch (default: 1 on a terminal, 2 in a log file)"


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


def _flag_type(field):
    kind = {"int": int, "float": float, "str": str}.get(field.type, field.type)
    return kind if kind in (int, float, str) else str


def parse_config(config_class, argv, *, description, help_texts, flag_names=None, switches=(), groups=()):
    """Parses the command line into a ``config_class`` (a dataclass).

    Every non-bool field is a flag ``--field-name`` (or ``flag_names[field]``) with the
    field's type; ``--config FILE.yaml`` sets defaults (flags override it), ``--resume
    RUN_DIR`` continues a run with its saved arguments.

    Args:
        config_class: the settings dataclass (e.g. :class:`kdtf.config.DistillConfig`).
        argv: the arguments (``None``: ``sys.argv[1:]``).
        description: the ``--help`` text above the flags.
        help_texts: ``{field: help}``; ``(default: ...)`` is appended unless the text
            says its default itself.
        flag_names: ``{field: "--flag"}`` where the flag is not ``--field-name``.
        switches: ``(flag, field, help)`` for bool fields; the switch sets the field to
            the opposite of its default (``--no-qat``, ``--flip``).
        groups: ``(title, [field, ...])`` sections of ``--help`` in order (``config``
            and ``resume`` name those two flags); fields in none stay under "options".

    Returns:
        ``(config, resume)``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    pre = ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    defaults = dataclasses.asdict(config_class())
    if known.config:
        defaults.update(load_yaml_defaults(known.config, set(fields)))
    parser = ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    section = {}
    for title, names in groups:
        group = parser.add_argument_group(title)
        section.update(dict.fromkeys(names, group))
    section = collections.defaultdict(lambda: parser, section)
    section["config"].add_argument("--config", help="YAML file of defaults (keys are the flag names with _ for -)")
    for name, field in fields.items():
        if isinstance(field.default, bool):
            continue
        text = help_texts.get(name, name.replace("_", " ")).replace("%", "%%")
        if "default" not in text:
            text += " (default: none)" if defaults[name] in ("", None) else " (default: %(default)s)"
        flag = (flag_names or {}).get(name, f"--{name.replace('_', '-')}")
        section[name].add_argument(flag, dest=name, type=_flag_type(field), default=defaults[name], help=text)
    for flag, name, text in switches:
        action = "store_false" if fields[name].default else "store_true"
        section[name].add_argument(flag, dest=name, action=action, default=defaults[name], help=text)
    section["resume"].add_argument("--resume", metavar="RUN_DIR",
                        help="continue a killed run from its last completed stage and epoch, with the arguments saved in RUN_DIR/args.yaml")
    args = vars(parser.parse_args(argv))
    args.pop("config")
    resume = args.pop("resume")
    if resume:
        verbose = args["verbose"]
        saved = resume_args(resume, argv, set(fields))
        for name, older in getattr(config_class, "FIELDS_ADDED", {}).items():
            saved.setdefault(name, older(saved))  # a folder written before the field: its behaviour then
        args = dict(dataclasses.asdict(config_class()), **saved)
        args.update(output=resume, verbose=verbose)
    return config_class(**args), bool(resume)


def save_args(args, folder):
    """Writes the final arguments to ``folder/args.yaml`` atomically."""
    import yaml

    write_text(os.path.join(folder, "args.yaml"), yaml.safe_dump(dict(args), sort_keys=True))


def show_library_logs(level=logging.INFO):
    """Shows what kdtf's library modules log (``logging.getLogger("kdtf....")``) as
    progress lines, ``[kdtf] message`` on stdout: the scripts' choice; a library user
    configures ``logging`` as they like."""
    logger = logging.getLogger("kdtf")
    if not any(getattr(h, "kdtf_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("[kdtf] %(message)s"))
        handler.kdtf_cli = True
        logger.addHandler(handler)
        logger.propagate = False  # not again through a root handler (TensorFlow's, basicConfig)
    logger.setLevel(level)


def exit_on_error(main):
    """Turns expected errors into a short message and exit code 2, without a traceback.
    ``FloatingPointError`` covers :class:`kdtf.NonFiniteLossError`. Library log lines
    are shown (:func:`show_library_logs`)."""

    @functools.wraps(main)
    def wrapper(argv=None):
        show_library_logs()
        try:
            return main(argv)
        except (ValueError, FloatingPointError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper


def validated(config, flag_names=None):
    """``config.validate()`` with each setting whose flag is not ``--its-name`` named by the
    flag the user typed too: "Expected learning_rate (--lr) > 0"."""
    try:
        config.validate()
    except ValueError as error:
        text = str(error)
        for field, flag in (flag_names or {}).items():
            text = re.sub(rf"\b{field}\b(?! \()", f"{field} ({flag})", text, count=1)
        raise ValueError(text) from None
    return config


def load_tensorflow():
    """Loads TensorFlow and tf_keras through :mod:`kdtf._keras`, which keeps their
    start-up lines off the terminal. Scripts call it after their flags are checked and
    before anything that imports TensorFlow or TF-MOT on its own."""
    import kdtf._keras  # noqa: F401  (heavy: loaded only once the flags are known to be good)


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
