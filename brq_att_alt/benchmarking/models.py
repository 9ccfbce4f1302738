"""The benchmarked models: BestRQModel arguments per variant and size (width scaling),
building, encoder parameter count, and model config files (JSON / hyperpyyaml)."""

import json
import re
from pathlib import Path
from typing import Optional

import torch

from .variants import VARIANTS, Variant


def _round_to(x: float, multiple: int) -> int:
    return max(multiple, int(round(x / multiple)) * multiple)


# The mixers' own width options and their defaults, scaled with ``width_scale``.
MIXER_SIZE_OPTIONS = {
    "hypermixing": {"hypernet_size": "d_ffn"},
    "summarymixing": {"local_proj_hid_dim": [512], "local_proj_out_dim": 512,
                      "summary_hid_dim": [512], "summary_out_dim": 512},
}


def encoder_config(
    variant: str, size: str = "base", width_scale: float = 1.0, d_model: Optional[int] = None,
    num_layers: Optional[int] = None, nhead: Optional[int] = None, d_ffn: Optional[int] = None,
    base_config: Optional[dict] = None,
) -> dict:
    """BestRQModel arguments for a variant at a named size (``sizes.model_config``).

    ``width_scale`` scales the parameter-matched d_model of the size table (rounded to
    a multiple of 2 * nhead), and with it d_ffn and the mixers' own hidden sizes
    (HyperMixing's hypernet, SummaryMixing's branches): scaled-down models keep the
    papers' ratios. ``d_model`` / ``num_layers`` / ``nhead`` / ``d_ffn`` override.
    ``base_config`` (from a config file) replaces the size table.
    """
    v = VARIANTS.get(variant, Variant(variant, {}, variant))
    if base_config is None:
        from ..sizes import model_config

        cfg = model_config(v.mixer, size)
    else:
        cfg = dict(base_config)
    cfg["mixer_kwargs"] = {**dict(cfg.get("mixer_kwargs") or {}), **v.mixer_kwargs}
    if nhead is not None:
        cfg["nhead"] = nhead
    heads = cfg.get("nhead", 8)
    if width_scale != 1.0:
        cfg["d_model"] = _round_to(cfg["d_model"] * width_scale, 2 * heads)
        full_ffn = cfg.get("d_ffn", 2048)
        cfg["d_ffn"] = _round_to(full_ffn * width_scale, heads)

        def scale(value):
            if isinstance(value, (list, tuple)):
                return [scale(x) for x in value]
            return _round_to(value * width_scale, heads)

        for key, default in MIXER_SIZE_OPTIONS.get(v.mixer, {}).items():
            value = cfg["mixer_kwargs"].get(key, full_ffn if default == "d_ffn" else default)
            cfg["mixer_kwargs"][key] = scale(value)
    for key, val in (("d_model", d_model), ("num_layers", num_layers), ("d_ffn", d_ffn)):
        if val is not None:
            cfg[key] = val
    return cfg


def build_model(config: dict):
    from ..model import BestRQModel

    return BestRQModel(**config)


def encoder_parameters(config: dict) -> int:
    """Parameters of what ``encode`` runs (front end + Conformer), built on the meta device."""
    with torch.device("meta"):
        model = build_model(config)
    return sum(p.numel() for m in (model.frontend, model.encoder) for p in m.parameters())


class _YamlTolerantLoader:
    """Builds a PyYAML loader that reads hyperpyyaml tags as plain values (``!ref <k>`` -> "<k>")."""

    @staticmethod
    def make():
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        def any_tag(loader, suffix, node):
            if isinstance(node, yaml.MappingNode):
                return loader.construct_mapping(node, deep=True)
            if isinstance(node, yaml.SequenceNode):
                return loader.construct_sequence(node, deep=True)
            return loader.construct_scalar(node)

        Loader.add_multi_constructor("!", any_tag)
        return Loader


CONFIG_ALIASES = {"attention_type": "mixer", "num_encoder_layers": "num_layers"}


def load_model_config(path) -> dict:
    """BestRQModel arguments from a JSON (``brq_model.json``) or (hyperpy)YAML file.

    Keys are BestRQModel's argument names (SpeechBrain's ``attention_type`` and
    ``num_encoder_layers`` are accepted), at the top level or in a nested mapping that
    has ``d_model``; ``!ref <key>`` to a top-level key is resolved, other tags are read
    as plain values. Missing arguments take BestRQModel's defaults.
    """
    import inspect

    from ..model import BestRQModel

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.load(text, Loader=_YamlTolerantLoader.make())  # noqa: S506 (safe loader subclass)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of model arguments")

    def resolve(v, depth=0):
        if isinstance(v, str) and re.fullmatch(r"<[\w.]+>", v.strip()) and depth < 10:
            return resolve(data.get(v.strip()[1:-1], v), depth + 1)
        return v

    names = set(inspect.signature(BestRQModel.__init__).parameters) - {"self"}
    scopes = [data] + [v for v in data.values() if isinstance(v, dict) and "d_model" in v]
    cfg = {}
    for scope in scopes:
        for k, v in scope.items():
            k = CONFIG_ALIASES.get(k, k)
            if k in names:
                cfg[k] = resolve(v)
    if "d_model" not in cfg:
        raise ValueError(f"{path}: no d_model found; expected BestRQModel arguments ({', '.join(sorted(names))})")
    return cfg
