"""CTC speech recognition on a BEST-RQ encoder: what CTC fine-tuning (``recipes/finetune_ctc``)
and the MP3S ASR probes (``recipes/MP3S/*_ASR``) share.

* ``CTCHead`` and ``save_asr_config``: the fine-tuning model parts. A fine-tuning run
  writes into its save folder, next to the pre-training layout (``brq_model.json`` +
  ``CKPT+*/model.ckpt``), ``ctc_head.json`` (the head's constructor arguments),
  ``tokenizer.json`` and ``CKPT+*/head.ckpt``: ``inference.BestRQTranscriber`` reads them.
* ``CTCBrain``: a ``FaultTolerantBrain`` with CTC loss over characters (or SentencePiece
  units) that, in validation and test, collects the utterance ids, references and greedy
  (and, at test time, beam-search and n-gram LM) hypotheses; validation gives the greedy
  WER, test writes the WER report.
* ``decoding_lm``: the n-gram LM of a recipe: given, built from the training transcripts,
  or none.

The test report of a set ``<name>`` (in ``output_folder``): ``wer_<name>.txt`` (each
decoding's WER with its bootstrap confidence interval, then SpeechBrain's per-utterance
alignments), ``hyp_<name>_<greedy|lm>.txt`` (``ID hypothesis`` lines) and
``wer_<name>.json`` (the figures).
"""

import json
import logging
from pathlib import Path
from typing import Dict, List, Optional, Union

import speechbrain as sb
import torch
import torch.nn as nn
from speechbrain.utils.distributed import run_on_main

from .ctc_decoding import BeamSearchDecoder, greedy_decode, lm_decoder_or_none
from .ngram import build_arpa, read_transcripts
from .text import CharTokenizer
from .training import FaultTolerantBrain
from .wer import corpus_wer, wer_report

logger = logging.getLogger(__name__)

HEAD_CONFIG_NAME = "ctc_head.json"
HEAD_CKPT_NAME = "head.ckpt"
TOKENIZER_NAME = "tokenizer.json"
DECODINGS = ("greedy", "beam", "lm")  # beam: CTC beam search without LM (``test_beam_search``)
PathLike = Union[str, Path]


class CTCHead(nn.Module):
    """MLP on top of the encoder: ``num_layers`` Linear layers, the last one to the vocabulary.

    Hidden layers: Linear -> LayerNorm -> LeakyReLU -> Dropout (LayerNorm, unlike
    BatchNorm, ignores the padded frames of other utterances); ``dropout_last_hidden=False``
    leaves the last hidden layer without dropout, as the paper's head. Returns logits (B, T, V).
    """

    def __init__(self, input_size: int, vocab_size: int, hidden_size: int = 512, num_layers: int = 3,
                 dropout: float = 0.15, dropout_last_hidden: bool = True):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.config = dict(input_size=input_size, vocab_size=vocab_size, hidden_size=hidden_size,
                           num_layers=num_layers, dropout=dropout, dropout_last_hidden=dropout_last_hidden)
        layers: List[nn.Module] = []
        size = input_size
        for i in range(num_layers - 1):
            last = i == num_layers - 2
            drop = nn.Dropout(dropout) if dropout_last_hidden or not last else nn.Identity()  # same indices
            layers += [nn.Linear(size, hidden_size), nn.LayerNorm(hidden_size), nn.LeakyReLU(), drop]
            size = hidden_size
        layers.append(nn.Linear(size, vocab_size))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def save_asr_config(head: CTCHead, tokenizer: CharTokenizer, save_folder: PathLike) -> Path:
    """Write ``ctc_head.json`` and ``tokenizer.json`` into a save folder; returns it."""
    save_folder = Path(save_folder)
    save_folder.mkdir(parents=True, exist_ok=True)
    (save_folder / HEAD_CONFIG_NAME).write_text(json.dumps(head.config, indent=2, sort_keys=True))
    tokenizer.save(save_folder / TOKENIZER_NAME)
    return save_folder


def decoding_lm(lm_path: Optional[PathLike], build: bool, train_csv: PathLike, output_folder: PathLike,
                order: int) -> str:
    """The n-gram LM a recipe decodes its test sets with: ``lm_path`` when given (it must exist);
    else, with ``build``, an ``order``-gram ARPA built from the ``wrd`` column of ``train_csv``
    into ``<output_folder>/lm/train_<order>gram.arpa`` (once, by the main process); else ""
    (greedy decoding only)."""
    if lm_path:
        if not Path(lm_path).is_file():
            raise FileNotFoundError(f"lm_path {lm_path} does not exist (an ARPA or kenlm binary file)")
        return str(lm_path)
    if not build:
        logger.warning("No lm_path given: test decoding is greedy only (pass --lm_path 4-gram.arpa for LM decoding).")
        return ""
    path = Path(output_folder) / "lm" / f"train_{order}gram.arpa"
    if not path.is_file():
        run_on_main(_build_transcript_lm, args=[train_csv, path, order])
    return str(path)


def _build_transcript_lm(train_csv: PathLike, path: Path, order: int) -> None:
    build_arpa(read_transcripts(train_csv, column="wrd"), path, order=order)


class CTCBrain(FaultTolerantBrain):
    """CTC over characters (or SentencePiece units), with the validation WER and the test
    report (see the module doc).

    ``compute_forward`` (the subclass's) returns ``(log_probs (B, T, V), relative lengths (B,))``;
    the batch has ``id``, ``wrd`` and ``tokens``. Other hparams used: ``tokenizer``,
    ``output_folder``, ``lm_path`` (empty: no LM), ``lm_alpha``, ``lm_beta``, ``beam_size``,
    ``confidence``, ``bootstrap_samples``, ``seed``, ``train_logger``, ``epoch_counter``;
    optional: ``beam_search_options`` (more ``CTCBeamSearcher`` arguments, e.g. ``prune_history``)
    and ``test_beam_search`` (True: also a CTC beam search without LM, decoding ``beam``).
    The subclass's ``end_of_validation(stats, epoch)`` logs, schedules and checkpoints;
    ``test_name`` names the set ``evaluate`` runs on, and ``test_results[test_name]`` gets
    ``{decoding: WER summary}``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.test_name = "test"
        self.test_results: Dict[str, Dict[str, dict]] = {}

    def targets(self, batch, stage):
        """(tokens (B, L), relative lengths (B,)) of the batch (augmentation may replicate them)."""
        return batch.tokens

    def compute_objectives(self, predictions, batch, stage):
        log_probs, lens = predictions
        tokens, token_lens = self.targets(batch, stage)
        tokenizer = self.hparams.tokenizer
        loss = sb.nnet.losses.ctc_loss(log_probs, tokens, lens, token_lens, blank_index=tokenizer.blank_index)
        if stage != sb.Stage.TRAIN:
            self.ids += list(batch.id)
            self.refs += [tokenizer.normalize(w) for w in batch.wrd]
            self.hyps["greedy"] += greedy_decode(log_probs, lens, tokenizer)
            if self.beam_decoder is not None:
                self.hyps["beam"] += self.beam_decoder(log_probs, lens)
            if self.lm_decoder is not None:
                self.hyps["lm"] += self.lm_decoder(log_probs, lens)
        return loss

    def on_stage_start(self, stage, epoch=None):
        self.ids, self.refs, self.hyps = [], [], {name: [] for name in DECODINGS}
        self.lm_decoder = self.beam_decoder = None
        if stage == sb.Stage.TEST:  # None without an LM or without kenlm (one warning): greedy only
            h = self.hparams
            search = dict(alpha=h.lm_alpha, beta=h.lm_beta, beam_size=h.beam_size,
                          **(getattr(h, "beam_search_options", None) or {}))
            self.lm_decoder = lm_decoder_or_none(h.tokenizer, h.lm_path, **search)
            if getattr(h, "test_beam_search", False):
                self.beam_decoder = BeamSearchDecoder(h.tokenizer, None, **search)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        stats = {"loss": stage_loss}
        if stage == sb.Stage.TRAIN:
            self.train_stats = {**stats, **self.skip_stats()}
            return
        stats["WER"] = 100.0 * corpus_wer(self.refs, self.hyps["greedy"])[0]
        if stage == sb.Stage.VALID:
            self.end_of_validation(stats, epoch)
        else:
            self.test_results[self.test_name] = self.write_test_report(self.test_name, stage_loss)

    def end_of_validation(self, stats: Dict[str, float], epoch: int) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define end_of_validation(stats, epoch)")

    def write_test_report(self, name: str, loss: float) -> Dict[str, dict]:
        """The report files of the test set ``name`` (module doc) and its line in the train log;
        returns ``{decoding: WER summary}`` (``wer``, ``ci_low``, ``ci_high`` in %, ...)."""
        h = self.hparams
        out = Path(h.output_folder)
        results: Dict[str, dict] = {}
        texts = {}
        for decoding in DECODINGS:
            hyps = self.hyps[decoding]
            if not hyps:
                continue
            summary, texts[decoding] = wer_report(self.ids, self.refs, hyps, confidence=h.confidence,
                                                  n_boot=h.bootstrap_samples, seed=h.seed)
            if decoding == "lm":
                summary.update(lm_path=str(h.lm_path), alpha=h.lm_alpha, beta=h.lm_beta, beam_size=h.beam_size)
            elif decoding == "beam":
                summary.update(beam_size=h.beam_size)
            results[decoding] = summary
            with open(out / f"hyp_{name}_{decoding}.txt", "w", encoding="utf-8") as fh:
                fh.writelines(f"{uid} {hyp}\n" for uid, hyp in zip(self.ids, hyps))
        with open(out / f"wer_{name}.txt", "w", encoding="utf-8") as fh:
            for decoding, s in results.items():
                fh.write(f"{name} {decoding:>6}: WER {s['wer']:.2f}% "
                         f"({100 * s['confidence']:.0f}% CI [{s['ci_low']:.2f}, {s['ci_high']:.2f}]) "
                         f"{s['errors']} errors / {s['ref_words']} words, {s['utterances']} utterances\n")
            for decoding, text in texts.items():
                fh.write(f"\n######## {decoding} decoding ########\n{text}")
        epoch = h.epoch_counter.current
        (out / f"wer_{name}.json").write_text(
            json.dumps({"split": name, "checkpoint_epoch": epoch, **results}, indent=2))
        test_stats = {"loss": loss}
        for decoding, s in results.items():
            test_stats[f"WER_{decoding}"] = s["wer"]
            test_stats[f"CI_{decoding}"] = f"[{s['ci_low']:.2f}, {s['ci_high']:.2f}]"
        h.train_logger.log_stats(stats_meta={"set": name, "Epoch loaded": epoch}, test_stats=test_stats)
        return results


__all__ = ["CTCBrain", "CTCHead", "HEAD_CKPT_NAME", "HEAD_CONFIG_NAME", "TOKENIZER_NAME", "decoding_lm",
           "save_asr_config"]
