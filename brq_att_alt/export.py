"""Export a pre-training or CTC fine-tuning run as a self-contained model folder.

::

    python -m brq_att_alt.export RUN OUT                       # best (fine-tuning) / newest checkpoint
    python -m brq_att_alt.export RUN OUT --checkpoint CKPT+2024-01-01+00-00-00+00
    python -m brq_att_alt.export RUN OUT --lm RUN/lm/train_3gram.arpa --alpha 0.8 --beta 1.5

``RUN`` is the output folder of ``train.py`` (pre-training) or of
``recipes/finetune_ctc`` (or its ``save`` folder, or one of its ``CKPT+...`` folders).
``OUT`` becomes a folder in the layout of a SpeechBrain model card (a Hugging Face Hub
model repository), loadable offline with SpeechBrain's interfaces::

    EncoderASR.from_hparams(source=OUT, savedir=...)        # fine-tuned: transcription
    WaveformEncoder.from_hparams(source=OUT, savedir=...)   # pre-trained: every layer's features

and with the project's own ``BestRQTranscriber.from_folder(OUT)``, ``load_pretrained(OUT)``
and ``python -m brq_att_alt.transcribe --model OUT``. Files:

* ``hyperparams.yaml``: the inference YAML (the encoder as ``brq_model.json`` records it,
  the CTC head, the tokenizer, the decoding function, the ``pretrainer``); no absolute path;
* ``model.ckpt`` (the ``BestRQModel`` state dict, copied from the checkpoint), ``brq_model.json``;
* fine-tuned: ``head.ckpt``, ``ctc_head.json``, ``tokenizer.ckpt`` (SpeechBrain's
  ``CTCTextEncoder``), ``tokenizer.json`` (the project's ``CharTokenizer``), and with
  ``--lm`` the n-gram LM as ``lm.ckpt`` (ARPA or kenlm binary; the YAML decodes with it);
* ``export.json`` (where the weights come from, decoding settings) and ``README.md``, the
  model card (YAML front matter for the Hub: license, tags, ``library_name: speechbrain``).

The run is only read. The folder is written next to ``OUT`` and renamed into place once
complete and loaded back through its ``hyperparams.yaml``; a non-empty ``OUT`` is refused
unless ``--force`` (then it is replaced), and ``OUT`` may never hold or be the run.
"""

import argparse
import datetime
import json
import logging
import os
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
import yaml

from .asr import HEAD_CKPT_NAME, HEAD_CONFIG_NAME, TOKENIZER_NAME, CTCHead
from .checkpointing import CheckpointError
from .inference import ranked_checkpoints
from .interfaces import EXPORT_INFO_NAME, LM_FILE_NAME
from .model import count_parameters
from .pretrained import (
    CONFIG_NAME,
    MODEL_CKPT_NAME,
    build_encoder,
    checkpoint_meta,
    first_readable,
    load_state,
    named_checkpoint,
    resolve_run,
)
from .text import CharTokenizer

logger = logging.getLogger(__name__)

HPARAMS_NAME = "hyperparams.yaml"
CARD_NAME = "README.md"
SB_TOKENIZER_NAME = "tokenizer.ckpt"
DEFAULT_LICENSE = "apache-2.0"
DEFAULT_DECODING = {"alpha": 0.8, "beta": 1.5, "beam_size": 32}  # the fine-tuning recipe's
KENLM_BINARY_MAGIC = b"mmap lm "
PAPERS = (
    "Whetten et al. An Analysis of Linear Complexity Attention Substitutes with BEST-RQ. 2024.",
    "Feillet et al. Polynomial Mixing for Efficient Self-supervised Speech Encoders. 2025.",
    "Ravanelli et al. SpeechBrain: A General-Purpose Speech Toolkit. 2021.",
)


class ExportError(RuntimeError):
    """The run cannot be exported as asked (the message says why and what to do)."""


# ------------------------------------------------------------------ the run
class Run:
    """What an export reads from a run: its folders, the chosen checkpoint and its states."""

    def __init__(self, path, checkpoint=None):
        self.save_folder, named = resolve_run(path)
        if checkpoint is not None:
            named = named_checkpoint(self.save_folder, checkpoint)
        parent = self.save_folder.parent
        self.folder = parent if self.save_folder.name == "save" and (parent / HPARAMS_NAME).is_file() \
            else self.save_folder
        self.is_asr = (self.save_folder / HEAD_CONFIG_NAME).is_file()

        def read(ckpt: Path):
            head = load_state(ckpt, HEAD_CKPT_NAME) if self.is_asr else None
            return load_state(ckpt, MODEL_CKPT_NAME), head

        if named is not None:
            self.checkpoint, (model_state, head_state) = named, read(named)
        else:
            self.checkpoint, (model_state, head_state) = first_readable(
                ranked_checkpoints(self.save_folder), read, self.save_folder)
        for name, state in (("model", model_state), ("head", head_state or {})):
            bad = [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point()
                   and not bool(torch.isfinite(v).all())]
            if bad:
                raise ExportError(f"{self.checkpoint}: the {name} weights hold NaN / Inf ({', '.join(bad[:3])}): "
                                  "export another checkpoint (--checkpoint)")
        # rebuilding them checks that config and weights fit
        self.encoder = build_encoder(self.save_folder, model_state, self.checkpoint, freeze=True)
        self.config = json.loads((self.save_folder / CONFIG_NAME).read_text())
        self.head = self.tokenizer = None
        if self.is_asr:
            self.head = CTCHead(**json.loads((self.save_folder / HEAD_CONFIG_NAME).read_text()))
            self.head.load_state_dict(head_state)
            tok_path = self.save_folder / TOKENIZER_NAME
            self.tokenizer = CharTokenizer.load(tok_path) if tok_path.is_file() else CharTokenizer()
            if self.tokenizer.vocab_size != self.head.config["vocab_size"]:
                raise ExportError(f"{tok_path}: {self.tokenizer.vocab_size} labels but the CTC head has "
                                  f"{self.head.config['vocab_size']} outputs")
        self.meta = {k: v for k, v in checkpoint_meta(self.checkpoint).items() if k not in ("unixtime", "files")}
        self.hparams = read_plain_yaml(self.folder / HPARAMS_NAME)

    @property
    def kind(self) -> str:
        return "asr" if self.is_asr else "encoder"

    @property
    def label(self) -> str:
        """The run's folder named by its last three parts (no absolute path goes into the folder)."""
        return "/".join(self.folder.resolve().parts[-3:])

    def log_line(self) -> Optional[str]:
        """The train log's last line for the checkpoint's epoch (None if unknown)."""
        log = self.folder / "train_log.txt"
        epoch = self.meta.get("epoch")
        if epoch is None or not log.is_file():
            return None
        lines = [line for line in log.read_text(encoding="utf-8").splitlines() if line.startswith(f"epoch: {epoch},")]
        return lines[-1] if lines else None

    def test_results(self) -> Dict[str, dict]:
        """{test set: ``wer_<set>.json``} written by the fine-tuning recipe's test stage."""
        out = {}
        for path in sorted(self.folder.glob("wer_*.json")):
            try:
                out[path.stem[len("wer_"):]] = json.loads(path.read_text())
            except (OSError, ValueError):
                logger.warning("%s cannot be read: left out of the model card", path)
        return out


def read_plain_yaml(path: Path) -> dict:
    """A run's (HyperPyYAML) ``hyperparams.yaml`` as plain data, tags ignored, nothing built ({} if absent)."""
    if not path.is_file():
        return {}

    class Loader(yaml.SafeLoader):
        pass

    def untagged(loader, suffix, node):
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)

    Loader.add_multi_constructor("!", untagged)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)
    except yaml.YAMLError as err:
        logger.warning("%s cannot be parsed (%s): the model card leaves out the training settings", path, err)
        return {}
    return data if isinstance(data, dict) else {}


# ------------------------------------------------------------------ checks
def check_output(out: Path, run: Run, force: bool, keep: Sequence[Path] = ()) -> None:
    """Refuse an ``out`` that is, holds or lies inside the run, or that holds any of ``keep``
    (with ``--force`` it would be deleted); a non-empty ``out`` without ``force``."""
    out_r = out.resolve()
    for inside in (run.folder.resolve(), run.save_folder.resolve()):
        if out_r == inside or out_r in inside.parents or inside in out_r.parents:
            raise ExportError(f"{out} would hold or lie inside the run {run.folder}: choose an output "
                              "folder outside it (the run is never modified)")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ExportError(f"{out} exists and is not empty: choose another folder, or pass --force to replace it")
        for path in keep:
            if out_r in Path(path).resolve().parents:
                raise ExportError(f"{path} lies inside {out}, which --force would replace: move it first")


def check_lm(path: Path) -> Path:
    """An ARPA or kenlm binary LM file, else ExportError."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise ExportError(f"--lm {path}: no such file (an ARPA or kenlm binary n-gram; build one with "
                          "`python -m brq_att_alt.ngram`)")
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if not (head.lstrip().startswith(b"\\data\\") or head.startswith(KENLM_BINARY_MAGIC)):
        raise ExportError(f"--lm {path} is neither an ARPA file (\\data\\ header) nor a kenlm binary")
    return path


# ------------------------------------------------------------------ writing
def _yaml_block(data: dict, indent: int = 4) -> str:
    """``key: value`` lines (values in YAML flow style), sorted, indented."""
    def flow(value) -> str:
        text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
        return text[: -len("...")].strip() if text.endswith("...") else text

    return "\n".join(f"{' ' * indent}{key}: {flow(value)}" for key, value in sorted(data.items()))


def hyperparams_text(run: Run, decoding: Optional[dict]) -> str:
    """The inference ``hyperparams.yaml`` of the exported folder (see the module doc)."""
    c = run.config
    params = count_parameters(run.encoder.model, trainable_only=False)
    if run.is_asr:
        use = ("for speechbrain.inference.ASR.EncoderASR (CTC on characters)",
               "from speechbrain.inference.ASR import EncoderASR",
               "asr = EncoderASR.from_hparams(source=FOLDER, savedir=SAVEDIR)",
               'asr.transcribe_file("audio.flac")')
    else:
        use = ("for speechbrain.inference.encoders.WaveformEncoder (every layer's features)",
               "from speechbrain.inference.encoders import WaveformEncoder",
               "enc = WaveformEncoder.from_hparams(source=FOLDER, savedir=SAVEDIR)",
               "enc.encode_batch(wavs, wav_lens)[\"embeddings\"]  # (num_hidden_states, B, T', d)")
    lines = [
        "# " + "#" * 76,
        f"# BEST-RQ Conformer encoder, token mixer {c['mixer']}, d_model {c['d_model']}, {c['num_layers']} layers "
        f"({params / 1e6:.1f}M parameters)",
        f"# Inference hyperparameters {use[0]},",
        "# written by `python -m brq_att_alt.export`; needs the brq_att_alt package.",
        "#",
        f"#   {use[1]}",
        f"#   {use[2]}",
        f"#   {use[3]}",
        "# " + "#" * 76,
        "",
        "sample_rate: 16000",
        "",
        f"# the encoder: {CONFIG_NAME}; its weights are {MODEL_CKPT_NAME}",
        "model: !new:brq_att_alt.model.BestRQModel",
        _yaml_block(c),
        "",
        "encoder_model: !new:brq_att_alt.pretrained.PretrainedEncoder",
        "    model: !ref <model>",
        "",
    ]
    loadables = {"model": "model"}
    if run.is_asr:
        tok = run.tokenizer
        lines += [
            f"blank_index: {tok.blank_index}",
            f"space_index: {tok.space_index}",
            "",
            f"# the CTC head ({HEAD_CONFIG_NAME}; weights {HEAD_CKPT_NAME})",
            "head: !new:brq_att_alt.asr.CTCHead",
            _yaml_block(run.head.config),
            "",
            "# waveforms -> CTC log-probabilities (B, T', V); frames after an utterance's end are certain blanks",
            "asr_model: !new:brq_att_alt.interfaces.CTCLogProbs",
            "    encoder: !ref <encoder_model>",
            "    head: !ref <head>",
            "    blank_index: !ref <blank_index>",
            "",
            f"# characters ({SB_TOKENIZER_NAME}, SpeechBrain's CTCTextEncoder: {tok.vocab_size} labels, blank first)",
            "tokenizer: !new:speechbrain.dataio.encoder.CTCTextEncoder",
            "tokenizer_size: !apply:speechbrain.dataio.encoder.CTCTextEncoder.expect_len "
            f"[!ref <tokenizer>, {tok.vocab_size}]",
            "",
            "greedy_decoding: !name:brq_att_alt.interfaces.greedy_ctc_ids",
            "    blank_id: !ref <blank_index>",
            "    space_id: !ref <space_index>",
            "",
        ]
        loadables.update(head="head", tokenizer="tokenizer")
        if decoding is None:
            lines += ["decoding_function: !ref <greedy_decoding>", ""]
        else:
            lines += [
                f"# n-gram LM ({LM_FILE_NAME}), shallow fusion: log p_ctc + alpha log p_lm + beta words;",
                "# greedy instead: overrides=\"decoding_function: !ref <greedy_decoding>\"",
                "lm: !new:brq_att_alt.interfaces.NgramFile",
                "decoding_function: !name:brq_att_alt.interfaces.NgramCTCBeamSearcher",
                "test_beam_search:",
                "    lm: !ref <lm>",
                "    blank_index: !ref <blank_index>",
                "    space_token: \" \"",
                f"    alpha: {decoding['alpha']}",
                f"    beta: {decoding['beta']}",
                f"    beam_size: {decoding['beam_size']}",
                "",
            ]
            loadables["lm"] = "lm"
        lines += ["modules:", "    encoder: !ref <asr_model>", ""]
    else:
        lines += [
            "# waveforms -> {embeddings: (num_hidden_states, B, T', d_model), padding_mask: (B, T'), lengths: (B,)}",
            "encoder: !new:brq_att_alt.interfaces.HiddenStates",
            "    encoder: !ref <encoder_model>",
            "",
            "modules:",
            "    encoder: !ref <encoder>",
            "",
        ]
    lines += ["# each loadable is <name>.ckpt in this folder, loaded strictly",
              "pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer",
              "    loadables:"]
    lines += [f"        {name}: !ref <{ref}>" for name, ref in loadables.items()]
    lines += ["    custom_hooks:"]
    lines += [f"        {name}: !name:brq_att_alt.interfaces.load_strict" for name in loadables if name != "lm"]
    return "\n".join(lines) + "\n"


def sb_tokenizer(tokenizer: CharTokenizer):
    """SpeechBrain's ``CTCTextEncoder`` with the labels of ``tokenizer`` at the same indices."""
    from speechbrain.dataio.encoder import CTCTextEncoder

    encoder = CTCTextEncoder()
    encoder.add_blank(tokenizer.labels[tokenizer.blank_index])
    encoder.update_from_iterable([label for i, label in enumerate(tokenizer.labels) if i != tokenizer.blank_index],
                                 sequence_input=False)
    if [encoder.ind2lab[i] for i in range(len(encoder))] != list(tokenizer.labels):
        raise ExportError("the tokenizer's labels cannot be laid out as a CTCTextEncoder (blank not first?)")
    return encoder


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def export_info(run: Run, decoding: Optional[dict]) -> dict:
    return {
        "format": 1,
        "kind": run.kind,
        "mixer": run.config["mixer"],
        "run": run.label,
        "checkpoint": run.checkpoint.name,
        "checkpoint_meta": run.meta,
        "decoding": decoding,
        "exported_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": {name: _version(name) for name in ("brq_att_alt", "speechbrain", "torch")},
    }


def _count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 100_000 else f"{n:,}"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def model_card(run: Run, decoding: Optional[dict], license_id: str, repo_hint: str = "<user>/<model-name>") -> str:
    """README.md of the folder: Hub front matter, what the model is, what the run recorded, how to use it."""
    c, h = run.config, run.hparams
    real = h.get("dataset") == "real"
    splits = ", ".join(map(str, h.get("train_splits") or [])) or "splits not recorded"
    if real:
        data = f"LibriSpeech ({splits})"
    elif h.get("dataset") == "synthetic":
        data = f"the project's synthetic eSpeak NG speech corpus (English, {splits})"
    else:
        data = f"not recorded (no {HPARAMS_NAME} next to the run's save folder)"
    total = count_parameters(run.encoder.model, trainable_only=False)
    encoding = sum(p.numel() for n, p in run.encoder.model.named_parameters()
                   if not n.startswith(("head.", "quantizer.")))
    tags = ["speechbrain", "best-rq", "conformer", c["mixer"], "pytorch"]
    tags += ["automatic-speech-recognition", "ctc"] if run.is_asr else ["self-supervised-learning", "feature-extraction"]
    front = {"language": ["en"], "license": license_id, "library_name": "speechbrain",
             "pipeline_tag": "automatic-speech-recognition" if run.is_asr else "feature-extraction", "tags": tags}
    if real:
        front["datasets"] = ["librispeech_asr"]
    if run.is_asr:
        front["metrics"] = ["wer"]
    title = (f"BEST-RQ Conformer ({c['mixer']} token mixer) fine-tuned for CTC speech recognition" if run.is_asr
             else f"BEST-RQ Conformer encoder ({c['mixer']} token mixer), self-supervised pre-training")
    rows = [("token mixer", f"`{c['mixer']}` (options: `{json.dumps(c.get('mixer_kwargs', {}), sort_keys=True)}`)"),
            ("size", f"d_model {c['d_model']}, {c['num_layers']} layers, {c['nhead']} heads, d_ffn {c['d_ffn']}, "
                     f"conv kernel {c['kernel_size']}" + (f" ({h['size_name']})" if h.get("size_name") else "")),
            ("parameters", f"{_count(encoding)} encoder (front end + Conformer), {_count(total)} with the "
                           "pre-training head and quantizer kept in `model.ckpt`"),
            ("input", "16 kHz mono audio, 80 log-mel filterbanks, 40 ms frames after the 4x front end"),
            ("training data", data)]
    if run.is_asr:
        rows += [("CTC head", f"{run.head.config['num_layers']}-layer MLP, "
                              f"{_count(count_parameters(run.head, trainable_only=False))} parameters, "
                              f"{run.tokenizer.vocab_size} labels (blank, space, {''.join(run.tokenizer.chars)})"),
                 ("decoding", "greedy" if decoding is None else
                  f"beam search {decoding['beam_size']} with the n-gram LM `{LM_FILE_NAME}` "
                  f"(alpha {decoding['alpha']}, beta {decoding['beta']})")]
    rows += [("checkpoint", f"`{run.checkpoint.name}` of run `{run.label}`"
                            + (f", {', '.join(f'{k} {_fmt(v)}' for k, v in run.meta.items())}" if run.meta else ""))]
    if h.get("number_of_epochs") is not None:
        rows.append(("epochs planned", str(h["number_of_epochs"])))
    out = ["---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", "", f"# {title}", "",
           "Exported with `python -m brq_att_alt.export` from a run of the brq_att_alt recipes "
           "(SpeechBrain; BEST-RQ Conformer encoders whose self-attention is replaced by a "
           "linear-complexity token mixer).", "",
           "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows] + [""]

    out += ["## What the run recorded", ""]
    line = run.log_line()
    if line:
        out += ["Train log at the exported checkpoint's epoch:", "", "```", line, "```", ""]
    results = run.test_results() if run.is_asr else {}
    if results:
        out += ["Test sets (decoded by the recipe with the checkpoint of its best validation WER):", "",
                "| test set | decoding | WER % | 95% CI | words | utterances |", "|---|---|---:|---|---:|---:|"]
        for name, r in results.items():
            for dec in ("greedy", "lm"):
                if isinstance(r.get(dec), dict):
                    s = r[dec]
                    out.append(f"| {name} | {dec} | {s['wer']:.2f} | [{s['ci_low']:.2f}, {s['ci_high']:.2f}] | "
                               f"{s.get('ref_words', '')} | {s.get('utterances', '')} |")
        epochs = {r.get("checkpoint_epoch") for r in results.values()}
        if run.meta.get("epoch") is not None and epochs != {run.meta.get("epoch")}:
            out += ["", f"These figures come from epoch(s) {sorted(e for e in epochs if e is not None)}; "
                        f"the exported checkpoint is from epoch {run.meta['epoch']}."]
        out.append("")
    if not line and not results:
        out += ["The run recorded no metrics for this checkpoint.", ""]
    if not real:
        out += ["Trained on synthetic speech: the figures show that the pipeline works, not what the mixer "
                "achieves on real speech.", ""]

    if run.is_asr:
        load = ["from speechbrain.inference.ASR import EncoderASR", "",
                'asr = EncoderASR.from_hparams(source="path/to/this/folder", savedir="pretrained_models/brq_ctc")',
                'print(asr.transcribe_file("audio.flac"))',
                "words, tokens = asr.transcribe_batch(wavs, wav_lens)  # (B, samples) 16 kHz, relative lengths"]
        if decoding is not None:
            load += ["", "# greedy decoding instead of the LM:",
                     'greedy = EncoderASR.from_hparams(source="path/to/this/folder", savedir="pretrained_models/brq_ctc",',
                     '                                 overrides="decoding_function: !ref <greedy_decoding>")']
        own = ["from brq_att_alt.inference import BestRQTranscriber", "",
               'asr = BestRQTranscriber.from_folder("path/to/this/folder")'
               + ("  # with the LM; lm_path=\"\" for greedy" if decoding else ""),
               'asr.transcribe_files(["a.flac", "b.wav"])',
               'feats = asr.layer_features("a.flac")  # every layer\'s hidden states']
        cli = "python -m brq_att_alt.transcribe --model path/to/this/folder a.flac b.wav"
    else:
        load = ["import torch",
                "from speechbrain.inference.encoders import WaveformEncoder", "",
                'enc = WaveformEncoder.from_hparams(source="path/to/this/folder", savedir="pretrained_models/brq")',
                "out = enc.encode_batch(wavs, wav_lens)  # (B, samples) 16 kHz waveforms, relative lengths (B,)",
                "out[\"embeddings\"]    # (num_hidden_states, B, T', d_model): front end, then each layer",
                "out[\"padding_mask\"]  # (B, T'), True = padded;  out[\"lengths\"]: (B,) valid 40 ms frames",
                'enc.encode_file("audio.flac")  # (num_hidden_states, 1, T\', d_model)']
        own = ["from brq_att_alt.pretrained import load_pretrained", "",
               'encoder = load_pretrained("path/to/this/folder")  # frozen; freeze=False to fine-tune',
               "output, padding_mask, hidden = encoder.encode(wavs, wav_lens, hidden=True)"]
        cli = "python -m brq_att_alt.transcribe --model path/to/this/folder --features feats.pt a.flac"
    out += ["## Use", "",
            "Install the brq_att_alt package, which defines the encoder (`pip install -e .` in its "
            "repository; SpeechBrain 1.1), and load the folder with SpeechBrain's interface. Nothing is downloaded: "
            "a local folder works offline (`HF_HUB_OFFLINE=1`); `savedir` receives links to the files.", "",
            "```python"] + load + ["```", "", "With the project's own interface and command line:", "",
                                   "```python"] + own + ["```", "", "```bash", cli, "```", ""]
    if run.is_asr:
        out += ["`from_folder` and the command line decode with the exported LM unless told otherwise "
                "(`lm_path=\"\"`, `--no-lm`)." if decoding else
                "Beam search with an n-gram LM: `--lm lm.arpa` (command line) or `lm_path=` (`from_folder`), "
                "or export again with `--lm`.", ""]
    out += ["## Push to the Hugging Face Hub", "",
            "This folder is a model repository as `huggingface_hub` expects it (this README with its "
            "front matter, `hyperparams.yaml`, the `*.ckpt` files). After `huggingface-cli login` (or with "
            "`HF_TOKEN` set):", "",
            "```bash", f"huggingface-cli upload {repo_hint} path/to/this/folder . --repo-type model", "```", "",
            "```python", "from huggingface_hub import HfApi", "",
            f'HfApi().create_repo("{repo_hint}", exist_ok=True)',
            f'HfApi().upload_folder(folder_path="path/to/this/folder", repo_id="{repo_hint}", repo_type="model")',
            "```", "", f"Then `source=\"{repo_hint}\"` in `from_hparams` loads it from the Hub.", "",
            "## Files", "",
            f"- `{HPARAMS_NAME}`: the inference hyperparameters (SpeechBrain `from_hparams`)",
            f"- `{MODEL_CKPT_NAME}`, `{CONFIG_NAME}`: the encoder's weights (a `BestRQModel` state dict) and "
            "constructor arguments"]
    if run.is_asr:
        out += [f"- `{HEAD_CKPT_NAME}`, `{HEAD_CONFIG_NAME}`: the CTC head",
                f"- `{SB_TOKENIZER_NAME}` (SpeechBrain `CTCTextEncoder`), `{TOKENIZER_NAME}` (the project's "
                "`CharTokenizer`): the same labels"]
        if decoding:
            out.append(f"- `{LM_FILE_NAME}`: the n-gram LM (ARPA or kenlm binary)")
    out += [f"- `{EXPORT_INFO_NAME}`: the source checkpoint, decoding settings, package versions", "",
            "## License", "",
            f"The weights are released under `{license_id}` (set with `--license` at export). "
            + ("LibriSpeech is CC BY 4.0." if real else "The synthetic corpus is generated by the project."), "",
            "## References", ""] + [f"- {p}" for p in PAPERS] + [""]
    return "\n".join(out)


def write_folder(run: Run, folder: Path, lm: Optional[Path], decoding: Optional[dict], license_id: str) -> None:
    """Every file of the export (module doc) into the empty ``folder``."""
    shutil.copy2(run.checkpoint / MODEL_CKPT_NAME, folder / MODEL_CKPT_NAME)
    (folder / CONFIG_NAME).write_text(json.dumps(run.config, indent=2, sort_keys=True))
    if run.is_asr:
        shutil.copy2(run.checkpoint / HEAD_CKPT_NAME, folder / HEAD_CKPT_NAME)
        (folder / HEAD_CONFIG_NAME).write_text(json.dumps(run.head.config, indent=2, sort_keys=True))
        run.tokenizer.save(folder / TOKENIZER_NAME)
        sb_tokenizer(run.tokenizer).save(folder / SB_TOKENIZER_NAME)
        if lm is not None:
            shutil.copy2(lm, folder / LM_FILE_NAME)
    (folder / HPARAMS_NAME).write_text(hyperparams_text(run, decoding), encoding="utf-8")
    (folder / EXPORT_INFO_NAME).write_text(json.dumps(export_info(run, decoding), indent=2), encoding="utf-8")
    (folder / CARD_NAME).write_text(model_card(run, decoding, license_id), encoding="utf-8")


def verify_folder(folder: Path, run: Run) -> None:
    """Load ``folder/hyperparams.yaml`` as SpeechBrain does (HyperPyYAML + Pretrainer, from a
    temporary ``savedir``) and check its weights are the run's: ExportError otherwise."""
    from hyperpyyaml import load_hyperpyyaml
    from speechbrain.utils.fetching import LocalStrategy

    with tempfile.TemporaryDirectory(prefix="brq-export-check-") as savedir:
        with open(folder / HPARAMS_NAME, encoding="utf-8") as fh:
            hparams = load_hyperpyyaml(fh)
        pretrainer = hparams["pretrainer"]
        pretrainer.set_collect_in(savedir)
        pretrainer.collect_files(default_source=str(folder), local_strategy=LocalStrategy.SYMLINK)
        pretrainer.load_collected()
        got = hparams["model"].state_dict()
        want = run.encoder.model.state_dict()
        if got.keys() != want.keys() or any(not torch.equal(got[k], want[k]) for k in want):
            raise ExportError(f"{folder / HPARAMS_NAME} does not rebuild the run's encoder")
        if run.is_asr:
            tok = hparams["tokenizer"]
            if [tok.ind2lab[i] for i in range(len(tok))] != list(run.tokenizer.labels):
                raise ExportError(f"{folder / SB_TOKENIZER_NAME} does not hold the run's labels")


def export(run_path, out, lm=None, checkpoint=None, force: bool = False, license_id: str = DEFAULT_LICENSE,
           alpha: Optional[float] = None, beta: Optional[float] = None, beam_size: Optional[int] = None) -> Path:
    """Export ``run_path`` into ``out`` (module doc); returns ``out``. ExportError / FileNotFoundError /
    CheckpointError say what is wrong; nothing is written then."""
    out = Path(out)
    run = Run(run_path, checkpoint)
    lm_path = check_lm(Path(lm)) if lm else None
    if lm_path is not None and not run.is_asr:
        raise ExportError(f"--lm: {run.folder} is a pre-training run (no CTC head): an LM needs a fine-tuned model")
    check_output(out, run, force, keep=[lm_path] if lm_path else [])
    decoding = None
    if lm_path is not None:
        h = run.hparams
        decoding = {"lm": LM_FILE_NAME,
                    "alpha": float(alpha if alpha is not None else h.get("lm_alpha", DEFAULT_DECODING["alpha"])),
                    "beta": float(beta if beta is not None else h.get("lm_beta", DEFAULT_DECODING["beta"])),
                    "beam_size": int(beam_size if beam_size is not None
                                     else h.get("beam_size", DEFAULT_DECODING["beam_size"]))}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        write_folder(run, tmp, lm_path, decoding, license_id)
        verify_folder(tmp, run)
        os.chmod(tmp, 0o755)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.replaced-", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("Exported %s (%s, checkpoint %s) to %s", run.folder, run.kind, run.checkpoint.name, out)
    return out


# ------------------------------------------------------------------ command line
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m brq_att_alt.export", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="output folder of a pre-training or fine-tuning run (or its save/ or a CKPT+ folder)")
    p.add_argument("out", help="the model folder to write (must not exist or be empty, unless --force)")
    p.add_argument("--checkpoint", default=None, help="a CKPT+... folder of the run (default: best validation "
                                                      "WER of a fine-tuning run, else the newest)")
    p.add_argument("--lm", default=None, help="n-gram LM (ARPA or kenlm binary) to ship and decode with")
    p.add_argument("--alpha", type=float, default=None, help="LM weight (default: the run's lm_alpha, else 0.8)")
    p.add_argument("--beta", type=float, default=None, help="word bonus (default: the run's lm_beta, else 1.5)")
    p.add_argument("--beam-size", type=int, default=None, help="beam width (default: the run's beam_size, else 32)")
    p.add_argument("--license", default=DEFAULT_LICENSE, help=f"license id of the model card (default {DEFAULT_LICENSE})")
    p.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        out = export(args.run, args.out, lm=args.lm, checkpoint=args.checkpoint, force=args.force,
                     license_id=args.license, alpha=args.alpha, beta=args.beta, beam_size=args.beam_size)
    except (ExportError, FileNotFoundError, CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
