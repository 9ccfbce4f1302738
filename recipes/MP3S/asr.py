"""CTC ASR probes on a frozen BEST-RQ encoder: the Brain and data pipeline shared by
``LibriSpeech_ASR`` and ``CommonVoice_ASR``.

Characters (``brq_att_alt.text.CharTokenizer``; for other languages the symbol set
of the training transcripts), CTC loss, greedy decoding for validation; at test
time WER without LM (greedy) and, when an n-gram LM is given or built, with the
LM through SpeechBrain's CTC beam searcher (``brq_att_alt.ctc_decoding``).
WER and its bootstrap CI come from ``brq_att_alt.wer``.
"""

import logging
from pathlib import Path
from typing import Dict

import speechbrain as sb
import torch

import common
from brq_att_alt.ctc_decoding import greedy_decode, lm_decoder_or_none
from brq_att_alt.ngram import build_arpa, read_transcripts
from brq_att_alt.text import DEFAULT_CHARS, CharTokenizer
from brq_att_alt.wer import corpus_wer, wer_report

logger = logging.getLogger(__name__)


class CTCBrain(common.ProbeBrain):
    """probe(x, lens) -> (B, T', vocab) logits; CTC over characters."""

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        feats, lens = self.encode(batch)
        logits = self.modules.probe(feats, lens)
        return torch.log_softmax(logits, dim=-1), lens

    def compute_objectives(self, predictions, batch, stage):
        log_probs, lens = predictions
        tokens, token_lens = batch.tokens
        loss = sb.nnet.losses.ctc_loss(log_probs, tokens, lens, token_lens, blank_index=self.tokenizer.blank_index)
        if stage != sb.Stage.TRAIN:
            self.ids += list(batch.id)
            self.refs += [self.tokenizer.normalize(w) for w in batch.wrd]
            self.hyps["greedy"] += greedy_decode(log_probs, lens, self.tokenizer)
            if stage == sb.Stage.TEST and self.lm_decoder is not None:
                self.hyps["lm"] += self.lm_decoder(log_probs, lens)
        return loss

    def on_stage_start(self, stage, epoch=None):
        self.ids, self.refs, self.hyps = [], [], {"greedy": [], "lm": []}

    def on_stage_end(self, stage, stage_loss, epoch=None):
        stats = {"loss": stage_loss}
        if stage == sb.Stage.TRAIN:
            self.train_stats = {**stats, **self.skip_stats()}
            return
        stats["WER"] = 100.0 * corpus_wer(self.refs, self.hyps["greedy"])[0]
        if stage == sb.Stage.VALID:
            self.log_epoch(self.train_stats, epoch, stats)
            self.checkpointer.save_and_keep_only(meta={"WER": stats["WER"]}, min_keys=["WER"])
            return
        results = {}
        for kind, hyps in self.hyps.items():
            if not hyps:
                continue
            summary, report = wer_report(self.ids, self.refs, hyps)
            results[kind] = summary
            Path(self.hparams.output_folder, f"wer_{self.test_name}_{kind}.txt").write_text(report)
            stats[f"WER_{kind}"] = summary["wer"]
        self.hparams.train_logger.log_stats(
            stats_meta={"Epoch loaded": self.hparams.epoch_counter.current, "set": self.test_name}, test_stats=stats
        )
        self.test_results[self.test_name] = results


def make_tokenizer(hparams, train_csv) -> CharTokenizer:
    """LibriSpeech characters, or (``char_set: from_data``) the symbols of the training transcripts."""
    path = Path(hparams["save_folder"]) / "tokenizer.json"
    if path.is_file():
        return CharTokenizer.load(path)
    if hparams["char_set"] == "from_data":
        chars = sorted({c for t in read_transcripts(train_csv) for c in t.upper() if not c.isspace()})
    elif hparams["char_set"] == "english":
        chars = list(DEFAULT_CHARS)
    else:
        raise ValueError(f"char_set must be 'english' or 'from_data', got {hparams['char_set']!r}")
    tokenizer = CharTokenizer(chars)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(path)
    return tokenizer


def lm_path(hparams, train_csv):
    """The n-gram LM: ``lm_path`` if given, else one built from the training transcripts when
    ``build_lm`` (order ``lm_order``), else None (no LM decoding)."""
    if hparams.get("lm_path"):
        return hparams["lm_path"]
    if not hparams.get("build_lm"):
        return None
    out = Path(hparams["output_folder"]) / f"lm_{hparams['lm_order']}gram.arpa"
    if not out.is_file():
        build_arpa(read_transcripts(train_csv), out, order=hparams["lm_order"])
    return str(out)


def datasets(hparams, paths: Dict[str, object], tokenizer: CharTokenizer):
    """train / valid datasets and {test name: dataset}, with ``tokens`` from ``wrd``."""
    train = common.audio_dataset(paths["train"], hparams, hparams.get("train_subset"))
    valid = common.audio_dataset(paths["valid"], hparams, hparams.get("valid_subset"))
    tests = {name: common.audio_dataset(p, hparams, hparams.get("test_subset")) for name, p in paths["test"].items()}

    @sb.utils.data_pipeline.takes("wrd")
    @sb.utils.data_pipeline.provides("wrd", "tokens")
    def text_pipeline(wrd):
        yield wrd
        yield tokenizer.encode(wrd)

    every = [train, valid] + list(tests.values())
    sb.dataio.dataset.add_dynamic_item(every, text_pipeline)
    sb.dataio.dataset.set_output_keys(every, ["id", "sig", "wrd", "tokens"])
    return train, valid, tests


def run(hparams, run_opts, paths, task: str, probe: str):
    """Train the CTC probe, test every test set; write the metrics JSON. ``paths``:
    {"train": csv, "valid": csv, "test": {name: csv}}."""
    tokenizer = make_tokenizer(hparams, paths["train"])
    probe_module = hparams["probe_class"](input_size=hparams["encoder_dim"], n_outputs=tokenizer.vocab_size)
    hparams["modules"]["probe"] = probe_module
    hparams["checkpointer"].add_recoverable("probe", probe_module)
    train, valid, tests = datasets(hparams, paths, tokenizer)
    brain = CTCBrain(modules=hparams["modules"], opt_class=hparams["optimizer"], hparams=hparams,
                     run_opts=run_opts, checkpointer=hparams["checkpointer"])
    brain.tokenizer, brain.lm_decoder, brain.test_results = tokenizer, None, {}
    brain.fit(brain.hparams.epoch_counter, train, valid,
              train_loader_kwargs=hparams["train_dataloader_opts"],
              valid_loader_kwargs=hparams["test_dataloader_opts"])
    lm = lm_path(hparams, paths["train"])
    brain.lm_decoder = lm_decoder_or_none(tokenizer, lm, alpha=hparams["lm_alpha"], beta=hparams["lm_beta"],
                                          beam_size=hparams["beam_size"])  # None: greedy only
    for name, data in tests.items():
        brain.test_name = name
        brain.evaluate(data, min_key="WER", test_loader_kwargs=hparams["test_dataloader_opts"])
    metrics = {}
    for name, results in brain.test_results.items():
        metrics[f"WER {name}"] = {"value": results["greedy"]["wer"], "direction": "lower", "unit": "%",
                                  "ci95": [results["greedy"]["ci_low"], results["greedy"]["ci_high"]]}
        if "lm" in results:
            metrics[f"WER {name} +LM"] = {"value": results["lm"]["wer"], "direction": "lower", "unit": "%",
                                          "ci95": [results["lm"]["ci_low"], results["lm"]["ci_high"]]}
    common.write_metrics(hparams, task, probe, metrics,
                         extra={"lm_path": lm if brain.lm_decoder else None, "vocab": tokenizer.labels})
    return metrics
