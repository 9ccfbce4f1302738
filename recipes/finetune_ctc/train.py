#!/usr/bin/env python3
"""CTC fine-tuning of a pre-trained BEST-RQ encoder (any token mixer) on characters.

Usage::

    python recipes/finetune_ctc/train.py recipes/finetune_ctc/hparams/finetune_ctc.yaml \\
        --pretrained_path results/brq_mhsa_tiny/1000            # synthetic corpus, CPU
    python recipes/finetune_ctc/train.py recipes/finetune_ctc/hparams/finetune_ctc.yaml \\
        --pretrained_path PRETRAIN_OUT --data_folder /data/LibriSpeech --lm_path 4-gram.arpa

The whole encoder is fine-tuned with its own (lower) learning rate; a 3-layer MLP head
maps its output to characters; CTC loss. Waveform augmentation (speed perturbation,
frequency and chunk dropping). Validation: greedy WER (drives NewBob and keeps the best
checkpoint). Test (each of ``test_splits``): greedy and n-gram LM beam-search decoding;
``<output_folder>/wer_<split>.txt`` holds both WERs with their bootstrap confidence
intervals and the per-utterance alignments, ``hyp_<split>_{greedy,lm}.txt`` the
hypotheses and ``wer_<split>.json`` the figures.

The save folder keeps the layout of a pre-training run (``brq_model.json`` +
``CKPT+*/model.ckpt``), plus ``ctc_head.json``, ``tokenizer.json`` and
``CKPT+*/head.ckpt``: ``brq_att_alt.inference.BestRQTranscriber.from_folder`` loads it.
A run resumes from its checkpoint when started again with the same output folder. Its
model configuration (encoder config, CTC head, characters, pre-training run) is recorded
in ``<output_folder>/run_config.json``; a run of another configuration is refused there
before anything is written. Batches with a non-finite loss or gradient are skipped and
logged (``brq_att_alt.training.FaultTolerantBrain``).
"""

import json
import logging
import sys
from pathlib import Path

import speechbrain as sb
import torch
from speechbrain.utils.distributed import run_on_main

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO_ROOT))

from brq_att_alt.ctc_decoding import greedy_decode, lm_decoder_or_none
from brq_att_alt.data import prepare_recipe_manifests, read_audio
from brq_att_alt.hparams import load_hparams
from brq_att_alt.inference import HEAD_CONFIG_NAME, save_asr_config
from brq_att_alt.model import count_parameters
from brq_att_alt.ngram import build_arpa, read_transcripts
from brq_att_alt.pretrained import CONFIG_NAME, find_save_folder, save_model_config
from brq_att_alt.training import FaultTolerantBrain, init_distributed, start_experiment
from brq_att_alt.wer import wer_report

logger = logging.getLogger(__name__)


class CTCFineTuneBrain(FaultTolerantBrain):
    """Encoder + MLP head + CTC; two optimizers (head, encoder)."""

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        wavs, wav_lens = batch.sig
        if stage == sb.Stage.TRAIN and self.hparams.augment:
            wavs, wav_lens = self.hparams.wav_augment(wavs, wav_lens)
        train_encoder = stage == sb.Stage.TRAIN and self.optimizer_step >= self.hparams.encoder_freeze_steps
        with torch.set_grad_enabled(train_encoder):
            out, out_mask, _ = self.modules.encoder(wavs, wav_lens)
        logits = self.modules.head(out)
        log_probs = logits.float().log_softmax(-1)
        out_lens = (~out_mask).sum(1).float() / out_mask.shape[1]  # relative, SpeechBrain style
        return log_probs, out_lens

    def compute_objectives(self, predictions, batch, stage):
        log_probs, out_lens = predictions
        tokens, token_lens = batch.tokens
        if stage == sb.Stage.TRAIN and self.hparams.augment:
            tokens = self.hparams.wav_augment.replicate_labels(tokens)
            token_lens = self.hparams.wav_augment.replicate_labels(token_lens)
        loss = sb.nnet.losses.ctc_loss(log_probs, tokens, out_lens, token_lens,
                                       blank_index=self.hparams.tokenizer.blank_index)
        if stage != sb.Stage.TRAIN:
            hyps = greedy_decode(log_probs, out_lens, self.hparams.tokenizer)
            self.ids += list(batch.id)
            self.refs += [self.hparams.tokenizer.normalize(w) for w in batch.wrd]
            self.hyps += hyps
            if stage == sb.Stage.TEST and self.lm_decoder is not None:
                self.lm_hyps += self.lm_decoder(log_probs, out_lens)
        return loss

    # ------------------------------------------------------------- optimizers
    def init_optimizers(self):
        encoder = getattr(self.modules.encoder, "module", self.modules.encoder)
        head = getattr(self.modules.head, "module", self.modules.head)
        self.head_optimizer = self.hparams.head_opt_class(head.parameters())
        self.encoder_optimizer = self.hparams.encoder_opt_class(encoder.encoding_parameters())
        self.optimizers_dict = {"head_optimizer": self.head_optimizer, "encoder_optimizer": self.encoder_optimizer}
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("head_optimizer", self.head_optimizer)
            self.checkpointer.add_recoverable("encoder_optimizer", self.encoder_optimizer)

    def freeze_optimizers(self, optimizers):
        if self.optimizer_step < self.hparams.encoder_freeze_steps:
            return {"head_optimizer": optimizers["head_optimizer"]}
        return optimizers

    # ----------------------------------------------------------------- stages
    def on_stage_start(self, stage, epoch=None):
        self.ids, self.refs, self.hyps, self.lm_hyps = [], [], [], []
        self.lm_decoder = None
        if stage == sb.Stage.TEST:  # None without an LM or without kenlm (one warning): greedy only
            self.lm_decoder = lm_decoder_or_none(
                self.hparams.tokenizer, self.hparams.lm_path, alpha=self.hparams.lm_alpha,
                beta=self.hparams.lm_beta, beam_size=self.hparams.beam_size,
            )

    def _report(self, hyps):
        return wer_report(self.ids, self.refs, hyps, confidence=self.hparams.confidence,
                          n_boot=self.hparams.bootstrap_samples, seed=self.hparams.seed)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        stats = {"loss": stage_loss}
        if stage == sb.Stage.TRAIN:
            self.train_stats = {**stats, **self.skip_stats()}
            return
        summary, _ = self._report(self.hyps)
        stats["WER"] = summary["wer"]
        if stage == sb.Stage.VALID:
            metric = stats[self.hparams.annealing_metric]  # WER stays at 100 for a while at first: loss then
            old_head, new_head = self.hparams.lr_annealing_head(metric)
            old_enc, new_enc = self.hparams.lr_annealing_encoder(metric)
            sb.nnet.schedulers.update_learning_rate(self.head_optimizer, new_head)
            sb.nnet.schedulers.update_learning_rate(self.encoder_optimizer, new_enc)
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "steps": self.optimizer_step, "lr_head": old_head, "lr_encoder": old_enc},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(meta={"WER": stats["WER"], "epoch": epoch},
                                                 min_keys=["WER"], num_to_keep=1)
        elif stage == sb.Stage.TEST:
            self.write_test_results(stats)

    def write_test_results(self, stats):
        split = self.test_split
        out = Path(self.hparams.output_folder)
        results = {"split": split, "checkpoint_epoch": self.hparams.epoch_counter.current}
        blocks = []
        for name, hyps in (("greedy", self.hyps), ("lm", self.lm_hyps)):
            if name == "lm" and self.lm_decoder is None:
                continue
            summary, text = self._report(hyps)
            if name == "lm":
                summary.update(lm_path=str(self.hparams.lm_path), alpha=self.hparams.lm_alpha,
                               beta=self.hparams.lm_beta, beam_size=self.hparams.beam_size)
            results[name] = summary
            blocks.append((name, summary, text))
            with open(out / f"hyp_{split}_{name}.txt", "w", encoding="utf-8") as fh:
                fh.writelines(f"{uid} {h}\n" for uid, h in zip(self.ids, hyps))
        with open(out / f"wer_{split}.txt", "w", encoding="utf-8") as fh:
            for name, s, _ in blocks:
                fh.write(f"{split} {name:>6}: WER {s['wer']:.2f}% "
                         f"({100 * s['confidence']:.0f}% CI [{s['ci_low']:.2f}, {s['ci_high']:.2f}]) "
                         f"{s['errors']} errors / {s['ref_words']} words, {s['utterances']} utterances\n")
            for name, _, text in blocks:
                fh.write(f"\n######## {name} decoding ########\n{text}")
        (out / f"wer_{split}.json").write_text(json.dumps(results, indent=2))
        test_stats = {"loss": stats["loss"]}
        for name, s, _ in blocks:
            test_stats[f"WER_{name}"] = s["wer"]
            test_stats[f"CI_{name}"] = f"[{s['ci_low']:.2f}, {s['ci_high']:.2f}]"
        self.hparams.train_logger.log_stats(
            stats_meta={"split": split, "Epoch loaded": self.hparams.epoch_counter.current}, test_stats=test_stats
        )


# ------------------------------------------------------------------------ data
def is_synthetic(data_folder) -> bool:
    """The synthetic corpus has a labels.csv next to the split folders (LibriSpeech has not)."""
    return (Path(data_folder) / "labels.csv").is_file()


def prepare_data(hparams):
    """Synthetic corpus if it is the data folder and absent; manifests, and ``train_csv``."""
    prepare_recipe_manifests(
        hparams["data_folder"], hparams["manifest_folder"], hparams["train_splits"],
        [hparams["valid_split"], *hparams["test_splits"]], hparams["train_csv"],
        min_duration=hparams["min_duration"], max_duration=None,
        synthetic_folder=hparams["synthetic_folder"], synthetic_options=hparams["synthetic_corpus_options"],
    )


def build_lm_if_needed(hparams):
    """Empty lm_path + synthetic corpus: an ARPA n-gram from the training transcripts."""
    if hparams["lm_path"]:
        if not Path(hparams["lm_path"]).is_file():
            raise FileNotFoundError(f"lm_path {hparams['lm_path']} does not exist (an ARPA or kenlm binary file)")
        return hparams["lm_path"]
    if not is_synthetic(hparams["data_folder"]):
        logger.warning("No lm_path given: test decoding is greedy only (pass --lm_path 4-gram.arpa for LM decoding).")
        return ""
    path = Path(hparams["output_folder"]) / "lm" / f"train_{hparams['lm_order']}gram.arpa"
    if not path.is_file():
        texts = read_transcripts(hparams["train_csv"], column="wrd")
        build_arpa(texts, path, order=hparams["lm_order"])
    return str(path)


def dataio_prepare(hparams, tokenizer):
    datasets = {}
    csvs = {"train": hparams["train_csv"], "valid": hparams["valid_csv"]}
    for split in hparams["test_splits"]:
        csvs[split] = str(Path(hparams["manifest_folder"]) / f"{split}.csv")
    for name, csv in csvs.items():
        data = sb.dataio.dataset.DynamicItemDataset.from_csv(csv_path=csv)
        if name == "train":
            data = data.filtered_sorted(sort_key="duration", key_max_value={"duration": hparams["max_duration"]})
        else:
            data = data.filtered_sorted(sort_key="duration", reverse=True)
        if len(data) == 0:
            raise ValueError(f"No utterance left in {csv} (check min_duration / max_duration)")
        datasets[name] = data

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return read_audio(wav, sample_rate=hparams["sample_rate"])

    @sb.utils.data_pipeline.takes("wrd")
    @sb.utils.data_pipeline.provides("tokens")
    def text_pipeline(wrd):
        return tokenizer.encode(wrd)

    all_sets = list(datasets.values())
    sb.dataio.dataset.add_dynamic_item(all_sets, audio_pipeline)
    sb.dataio.dataset.add_dynamic_item(all_sets, text_pipeline)
    sb.dataio.dataset.set_output_keys(all_sets, ["id", "sig", "wrd", "tokens"])

    if hparams["dynamic_batching"]:
        sampler = sb.dataio.sampler.DynamicBatchSampler(
            datasets["train"], max_batch_length=hparams["max_batch_length"], num_buckets=hparams["num_buckets"],
            length_func=lambda x: x["duration"], shuffle=hparams["shuffle"], batch_ordering="random",
            seed=hparams["seed"],
        )
        train_kwargs = {"batch_sampler": sampler, "num_workers": hparams["num_workers"]}
    else:
        train_kwargs = {"batch_size": hparams["batch_size"], "shuffle": hparams["shuffle"],
                        "num_workers": hparams["num_workers"]}
    return datasets, train_kwargs


def run_configuration(hparams) -> dict:
    """What a resumed run must share with the run in its output folder: the encoder config,
    the CTC head, the characters and the pre-training run it started from (its checkpoint is
    recorded as information only: on resume the encoder comes from this run's checkpoint).
    Returns the ``config`` and ``legacy`` arguments of ``start_experiment``."""
    encoder, head, tokenizer = hparams["encoder"], hparams["head"], hparams["tokenizer"]
    config = {
        "recipe": "finetune_ctc", "encoder": encoder.config, "head": head.config,
        "characters": list(tokenizer.labels),
        "pretrained": str(find_save_folder(hparams["pretrained_path"]).resolve()),
        "info": {"pretrained_checkpoint": str(getattr(encoder, "checkpoint", ""))},
    }
    save = Path(hparams["save_folder"])
    legacy = {str(save / CONFIG_NAME): encoder.config, str(save / HEAD_CONFIG_NAME): head.config}
    return {"config": config, "legacy": legacy}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    hparams_file, run_opts, overrides, hparams = load_hparams(argv)
    if run_opts.get("precision") == "fp16" and not torch.cuda.is_available():
        raise SystemExit("--precision fp16 needs a CUDA device; use bf16 or fp32 on CPU.")
    init_distributed(run_opts)
    start_experiment(hparams, hparams_file, overrides, **run_configuration(hparams))
    run_on_main(prepare_data, kwargs={"hparams": hparams})
    run_on_main(build_lm_if_needed, kwargs={"hparams": hparams})
    hparams["lm_path"] = build_lm_if_needed(hparams)  # every process: now a no-op returning the path

    encoder, head, tokenizer = hparams["encoder"], hparams["head"], hparams["tokenizer"]
    run_on_main(save_model_config, args=[encoder.model, hparams["save_folder"]])
    run_on_main(save_asr_config, args=[head, tokenizer, hparams["save_folder"]])
    hparams["checkpointer"].add_recoverable("model", encoder.model)
    logger.info("Fine-tuning a %s encoder (%.2fM parameters) + CTC head (%.2fM) from %s",
                encoder.mixer, count_parameters(encoder.model) / 1e6,
                count_parameters(head) / 1e6, hparams["pretrained_path"])

    datasets, train_kwargs = dataio_prepare(hparams, tokenizer)
    brain = CTCFineTuneBrain(modules=hparams["modules"], hparams=hparams, run_opts=run_opts,
                             checkpointer=hparams["checkpointer"])
    brain.fit(brain.hparams.epoch_counter, datasets["train"], datasets["valid"],
              train_loader_kwargs=train_kwargs, valid_loader_kwargs=hparams["valid_dataloader_options"],
              progressbar=hparams["progressbar"])
    for split in hparams["test_splits"]:
        brain.test_split = split
        brain.evaluate(datasets[split], min_key="WER", test_loader_kwargs=hparams["test_dataloader_options"],
                       progressbar=hparams["progressbar"])
    return brain


if __name__ == "__main__":
    main()
