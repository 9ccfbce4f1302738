"""Command line + HyperPyYAML loading shared by every recipe, with clear errors."""

import dataclasses
import re
import sys
from typing import List, Optional, Tuple, Union

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml

DATASETS = ("synthetic", "real")  # the values of the `dataset` key of every recipe YAML


def _float_interval_minutes(argv: List[str]) -> Tuple[List[str], Optional[float]]:
    """Take ``--ckpt_interval_minutes`` out of argv (SpeechBrain's parser types it int, so
    ``0.5`` would be refused): (the other arguments, its value as a float, or None)."""
    rest, value, args = [], None, iter(argv)
    for arg in args:
        name, sep, given = arg.partition("=")
        if name == "--ckpt_interval_minutes":
            given = given if sep else next(args, "")
            try:
                value = float(given)
            except ValueError:
                raise SystemExit(
                    f"--ckpt_interval_minutes must be a number of minutes (e.g. 0.5), got {given!r}") from None
        else:
            rest.append(arg)
    return rest, value


def load_hparams(argv: Optional[List[str]] = None) -> Tuple[str, dict, str, dict]:
    """``sb.parse_arguments`` + ``load_hparams_file``: (hparams_file, run_opts, overrides, hparams).

    ``argv`` as on the command line (default ``sys.argv[1:]``): the YAML file, then
    ``--key=value`` overrides and SpeechBrain run options.
    """
    argv = sys.argv[1:] if argv is None else argv
    argv, interval_minutes = _float_interval_minutes(list(argv))
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    if interval_minutes is not None:
        run_opts = dataclasses.replace(run_opts, ckpt_interval_minutes=interval_minutes,
                                       overridden_args=run_opts.overridden_args | {"ckpt_interval_minutes"})
    # SpeechBrain 1.1 parses --optimizer_step_limit as a string; Brain.fit compares it to ints.
    if isinstance(getattr(run_opts, "optimizer_step_limit", None), str):
        run_opts = dataclasses.replace(run_opts, optimizer_step_limit=int(run_opts.optimizer_step_limit))
    return hparams_file, run_opts, overrides, load_hparams_file(hparams_file, overrides)


def load_hparams_file(hparams_file: str, overrides: Union[str, dict, None] = None) -> dict:
    """``load_hyperpyyaml`` of a recipe YAML with ``overrides`` (YAML text or a dict), with clear errors.

    An override naming no key of the YAML file stops with a message that says so,
    instead of HyperPyYAML's KeyError listing every key; so does a key the YAML marks
    ``!PLACEHOLDER`` (no default, e.g. ``data_folder``) that the command line leaves out,
    and a ``dataset`` key (every recipe's "synthetic corpus or real data?") that is neither
    of ``DATASETS``.
    """
    with open(hparams_file, encoding="utf-8") as fin:
        try:
            hparams = load_hyperpyyaml(fin, overrides)
        except KeyError as err:  # hyperpyyaml: "Override 'x' not found in: [...]"
            message = str(err.args[0]) if err.args else ""
            if not message.startswith("Override"):
                raise
            raise SystemExit(
                f"{hparams_file}: {message.split(' in:')[0]}. Every --key=value must name a key "
                "of the YAML file (check the spelling), or be a SpeechBrain run option."
            ) from err
        except ValueError as err:  # hyperpyyaml: "'x' is a !PLACEHOLDER and must be replaced."
            match = re.match(r"'(.+)' is a !PLACEHOLDER", str(err))
            if match is None:
                raise
            key = match.group(1)
            raise SystemExit(
                f"{hparams_file}: {key} has no default value and must be given on the command "
                f"line: --{key}=VALUE (see the comment above {key} in the YAML file)."
            ) from err
    if "dataset" in hparams and hparams["dataset"] not in DATASETS:
        raise SystemExit(f"{hparams_file}: dataset must be one of {DATASETS} (the synthetic corpus or the real "
                         f"dataset in data_folder), got {hparams['dataset']!r}")
    return hparams
