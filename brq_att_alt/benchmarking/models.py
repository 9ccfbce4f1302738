"""What is measured: the benchmarked encoders, their sizes, and the inputs they get.

An encoder variant is a registered token mixer with fixed options and a display label
(``mhsa_sdpa`` is MHSA with ``implementation: sdpa``). Its BestRQModel arguments come
from the parameter-matched size table (``brq_att_alt.sizes``), optionally scaled in
width, or from a model config file (``brq_model.json`` or a recipe YAML). The inputs
are random normalised filterbanks (B, 100 * seconds, 80), time padded to a multiple of
4; fp16 / bf16 run under autocast (fp32 weights).
"""

import inspect
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

N_MELS = 80
FRAMES_PER_SECOND = 100  # 10 ms hop
PAD_MULTIPLE = 4
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def num_frames(seconds: float) -> int:
    """Filterbank frames of ``seconds`` of audio (10 ms hop), padded to a multiple of 4."""
    T = max(int(round(FRAMES_PER_SECOND * seconds)), PAD_MULTIPLE)
    return T + (-T) % PAD_MULTIPLE


@dataclass(frozen=True)
class Variant:
    """A benchmarked encoder variant: registered mixer name, its options, a display label."""

    mixer: str
    mixer_kwargs: dict
    label: str


VARIANTS: Dict[str, Variant] = {
    "mhsa": Variant("mhsa", {}, "MHSA (RelPosMHAXL)"),
    "mhsa_sdpa": Variant("mhsa", {"implementation": "sdpa"}, "MHSA (SDPA)"),
    "hypermixing": Variant("hypermixing", {}, "HyperMixing"),
    "fastformer": Variant("fastformer", {}, "Fastformer"),
    "summarymixing": Variant("summarymixing", {}, "SummaryMixing"),
    "mamba": Variant("mamba", {}, "Mamba (bidirectional)"),
    "pom": Variant("pom", {}, "PoM"),
}
BASELINE = "mhsa"

# The mixers' own width options (hidden sizes, not ratios), scaled with ``width_scale``.
# Only the names live here: the values are the config's or else the mixer's signature
# defaults (the papers' widths); None (SummaryMixing's summary_out_dim: d_model) stays None.
WIDTH_OPTIONS: Dict[str, Sequence[str]] = {
    "hypermixing": ("hypernet_size",),
    "summarymixing": ("local_proj_hid_dim", "local_proj_out_dim", "summary_hid_dim", "summary_out_dim"),
}


@dataclass(frozen=True)
class Encoder:
    """One benchmarked encoder: its key (variant or config file stem), display label,
    BestRQModel arguments and the parameter count of what ``encode`` runs, in millions."""

    key: str
    label: str
    config: dict
    params_m: float

    @property
    def info(self) -> dict:
        """The columns every per-run row of this encoder carries."""
        return dict(mixer=self.key, label=self.label, d_model=self.config["d_model"],
                    num_layers=self.config.get("num_layers", 12), encoder_params_m=self.params_m)


def _round_to(x: float, multiple: int) -> int:
    return max(multiple, int(round(x / multiple)) * multiple)


def _width_defaults(mixer: str) -> Dict[str, object]:
    """The mixer's width options and their defaults, read from its constructor's signature."""
    if mixer not in WIDTH_OPTIONS:
        return {}
    from ..mixers import MIXER_CLASSES

    params = inspect.signature(MIXER_CLASSES[mixer]).parameters
    return {name: params[name].default for name in WIDTH_OPTIONS[mixer]}


def scale_config(config: dict, width_scale: float = 1.0, d_model: Optional[int] = None,
                 num_layers: Optional[int] = None, nhead: Optional[int] = None, d_ffn: Optional[int] = None) -> dict:
    """BestRQModel arguments with the width scaled and the given sizes overridden (a copy).

    ``width_scale`` scales d_model (rounded to a multiple of 2 * nhead), d_ffn and the
    mixer's own hidden sizes (``WIDTH_OPTIONS``, rounded to a multiple of nhead): scaled-down
    models keep the papers' parameter ratios. ``d_model`` / ``num_layers`` / ``nhead`` /
    ``d_ffn`` then override.
    """
    cfg = dict(config)
    cfg["mixer_kwargs"] = dict(cfg.get("mixer_kwargs") or {})
    if nhead is not None:
        cfg["nhead"] = nhead
    heads = cfg.get("nhead", 8)
    if width_scale != 1.0:
        cfg["d_model"] = _round_to(cfg["d_model"] * width_scale, 2 * heads)
        cfg["d_ffn"] = _round_to(cfg.get("d_ffn", 2048) * width_scale, heads)

        def scale(value):
            if value is None:  # follows d_model
                return None
            if isinstance(value, (list, tuple)):
                return [scale(x) for x in value]
            return _round_to(value * width_scale, heads)

        for key, default in _width_defaults(cfg.get("mixer", "mhsa")).items():
            cfg["mixer_kwargs"][key] = scale(cfg["mixer_kwargs"].get(key, default))
    for key, val in (("d_model", d_model), ("num_layers", num_layers), ("d_ffn", d_ffn)):
        if val is not None:
            cfg[key] = val
    return cfg


def encoder_config(variant: str, size: str = "base", **scaling) -> dict:
    """BestRQModel arguments of a variant at a named size (``sizes.model_config``), then
    ``scale_config(**scaling)`` (width_scale, d_model, num_layers, nhead, d_ffn)."""
    from ..sizes import model_config

    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    v = VARIANTS[variant]
    cfg = model_config(v.mixer, size)
    cfg["mixer_kwargs"] = {**cfg["mixer_kwargs"], **v.mixer_kwargs}
    return scale_config(cfg, **scaling)


def build_model(config: dict):
    """A BestRQModel from its arguments."""
    from ..model import BestRQModel

    return BestRQModel(**config)


def encoder_parameters(config: dict) -> int:
    """Parameters of what ``encode`` runs (front end + Conformer), built on the meta device."""
    with torch.device("meta"):
        model = build_model(config)
    return sum(p.numel() for m in (model.frontend, model.encoder) for p in m.parameters())


def make_encoder(key: str, label: str, config: dict) -> Encoder:
    """An ``Encoder`` with its parameter count."""
    return Encoder(key, label, config, round(encoder_parameters(config) / 1e6, 3))


def variant_encoders(variants: Sequence[str], size: str = "base", **scaling) -> List[Encoder]:
    """The encoders of named variants at a size of the table (see ``encoder_config``)."""
    return [make_encoder(v, VARIANTS[v].label, encoder_config(v, size, **scaling)) for v in variants]


def config_file_encoders(paths: Sequence, **scaling) -> List[Encoder]:
    """One encoder per model config file (``load_model_config``), keyed by the file stem."""
    out = []
    for path in paths:
        cfg = scale_config(load_model_config(path), **scaling)
        key = Path(path).stem
        out.append(make_encoder(key, f"{key} ({cfg.get('mixer', 'mhsa')})", cfg))
    if len({e.key for e in out}) < len(out):
        raise ValueError(f"Config files with the same name: {[str(p) for p in paths]}; rename one")
    return out


# ----------------------------------------------------------------------------- config files
CONFIG_ALIASES = {"attention_type": "mixer", "num_encoder_layers": "num_layers"}
_PACKAGE = __name__.split(".")[0]


class _Apply:
    """``!apply:<target> args`` of a YAML file, called once the whole file is read."""

    def __init__(self, target: str, args):
        self.target, self.args = target, args

    def __call__(self, args):
        import importlib

        module, _, name = self.target.rpartition(".")
        fn = getattr(importlib.import_module(module), name)
        return fn(**args) if isinstance(args, dict) else fn(*(args if isinstance(args, list) else [args]))


def _yaml_loader():
    """A PyYAML loader that reads HyperPyYAML tags as plain values, except
    ``!apply:brq_att_alt.<module>.<function> [args]``, read as an ``_Apply`` (this package's
    functions only: nothing else is run, nothing is instantiated)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def any_tag(loader, suffix, node):
        if isinstance(node, yaml.MappingNode):
            value = loader.construct_mapping(node, deep=True)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_scalar(node)
        if suffix.startswith(f"apply:{_PACKAGE}."):
            return _Apply(suffix[len("apply:"):], value)
        return value

    Loader.add_multi_constructor("!", any_tag)
    return Loader


def _evaluate(value, memo: dict):
    """``value`` with every ``_Apply`` replaced by its result (shared objects evaluated once)."""
    if id(value) in memo:
        return memo[id(value)]
    if isinstance(value, dict):
        out = {k: _evaluate(v, memo) for k, v in value.items()}
    elif isinstance(value, list):
        out = [_evaluate(v, memo) for v in value]
    elif isinstance(value, _Apply):
        out = value(_evaluate(value.args, memo))
    else:
        return value
    memo[id(value)] = out
    return out


def _read_yaml(path: Path) -> dict:
    """The mapping of a (Hyper)YAML file with its ``!ref`` references resolved by HyperPyYAML
    (``!PLACEHOLDER`` values left unset); this package's ``!apply:`` calls are ``_Apply``s."""
    import yaml
    from hyperpyyaml import resolve_references

    text = path.read_text(encoding="utf-8")
    unset = {k: "<unset>" for k in re.findall(r"^(\w+):\s*!PLACEHOLDER\b", text, re.M)}
    try:
        resolved = resolve_references(text, overrides=unset).getvalue()
    except (ValueError, KeyError) as err:
        raise ValueError(f"{path}: cannot resolve its references: {err}") from err
    data = yaml.load(resolved, Loader=_yaml_loader())  # noqa: S506 (a SafeLoader subclass)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of model arguments")
    return data


def load_model_config(path) -> dict:
    """BestRQModel arguments from a JSON (``brq_model.json``) or (Hyper)YAML file.

    Keys are BestRQModel's argument names (SpeechBrain's ``attention_type`` and
    ``num_encoder_layers`` are accepted), at the top level or in a nested mapping that
    has ``d_model`` (e.g. ``model: !new:brq_att_alt.model.BestRQModel``), the nested one
    winning. In YAML, ``!ref`` is resolved as HyperPyYAML does and this package's
    ``!apply:`` functions of the model arguments are called (``d_model:
    !apply:brq_att_alt.sizes.matched_d_model [...]``, ``mixer_kwargs:
    !apply:brq_att_alt.mixers.mixer_options [...]``); nothing else is run or instantiated.
    Missing arguments take BestRQModel's defaults.
    """
    from ..model import BestRQModel

    path = Path(path)
    data = json.loads(path.read_text(encoding="utf-8")) if path.suffix == ".json" else _read_yaml(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of model arguments")
    names = set(inspect.signature(BestRQModel.__init__).parameters) - {"self"}
    scopes = [data] + [v for v in data.values() if isinstance(v, dict) and "d_model" in v]
    cfg = {}
    for scope in scopes:
        for k, v in scope.items():
            k = CONFIG_ALIASES.get(k, k)
            if k in names:
                cfg[k] = v
    cfg = _evaluate(cfg, {})  # the model arguments' !apply: calls, and no other
    if "d_model" not in cfg:
        raise ValueError(f"{path}: no d_model found; expected BestRQModel arguments ({', '.join(sorted(names))})")
    bad = {k: v for k, v in cfg.items() if k != "mixer_kwargs" and isinstance(v, (dict, list))}
    if bad or not isinstance(cfg.get("mixer_kwargs", {}), dict):
        raise ValueError(f"{path}: model arguments that are not plain values: {bad or cfg['mixer_kwargs']}")
    return cfg
