#!/usr/bin/env python3
"""CTC fine-tuning of a pre-trained BEST-RQ encoder (any token mixer) on characters.

Usage::

    python recipes/finetune_ctc/train.py recipes/finetune_ctc/hparams/finetune_ctc_tiny.yaml \\
        --pretrained_path results/brq_mhsa_tiny/1000            # tiny CPU setting, synthetic corpus
    python recipes/finetune_ctc/train.py recipes/finetune_ctc/hparams/finetune_ctc_librispeech.yaml \\
        --pretrained_path PRETRAIN_OUT --data_folder /data/LibriSpeech --lm_path 4-gram.arpa  # the paper's

The whole encoder is fine-tuned with its own (lower) learning rate; an MLP head maps its
output to characters; CTC loss. Waveform augmentation (speed perturbation, frequency and
chunk dropping). Validation: greedy WER (keeps the best checkpoint) and loss (drives NewBob
by default). Test (each of ``test_splits``): greedy and n-gram LM beam-search decoding
(``brq_att_alt.asr.CTCBrain``, shared with the MP3S ASR probes):
``<output_folder>/wer_<split>.txt`` holds both WERs with their bootstrap confidence
intervals and the per-utterance alignments, ``hyp_<split>_{greedy,lm}.txt`` the
hypotheses and ``wer_<split>.json`` the figures.

The save folder keeps the layout of a pre-training run (``brq_model.json`` +
``CKPT+*/model.ckpt``), plus ``ctc_head.json``, ``tokenizer.json`` and
``CKPT+*/head.ckpt`` (``brq_att_alt.asr``): ``brq_att_alt.inference.BestRQTranscriber.from_folder``
loads it.
A run resumes from its checkpoint when started again with the same output folder. Its
model configuration (encoder config, CTC head, characters, pre-training run) is recorded
in ``<output_folder>/run_config.json``; a run of another configuration is refused there
before anything is written. Batches with a non-finite loss or gradient are skipped and
logged (``brq_att_alt.training.FaultTolerantBrain``).
"""

import logging
from pathlib import Path

import speechbrain as sb
import torch
from speechbrain.utils.distributed import run_on_main

from brq_att_alt.asr import HEAD_CONFIG_NAME, CTCBrain, decoding_lm, save_asr_config
from brq_att_alt.data.datasets import audio_dataset
from brq_att_alt.data.librispeech import prepare_recipe_manifests
from brq_att_alt.data.synthetic import ensure_synthetic_corpus
from brq_att_alt.hparams import load_hparams
from brq_att_alt.model import count_parameters
from brq_att_alt.pretrained import CONFIG_NAME, find_save_folder, save_model_config
from brq_att_alt.training import init_distributed, start_experiment

logger = logging.getLogger(__name__)


class CTCFineTuneBrain(CTCBrain):
    """Encoder + MLP head + CTC; two optimizers (head, encoder); NewBob on validation."""

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

    def targets(self, batch, stage):
        tokens, token_lens = batch.tokens
        if stage == sb.Stage.TRAIN and self.hparams.augment:  # the augmenter may add copies of the batch
            tokens = self.hparams.wav_augment.replicate_labels(tokens)
            token_lens = self.hparams.wav_augment.replicate_labels(token_lens)
        return tokens, token_lens

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
    def end_of_validation(self, stats, epoch):
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


# ------------------------------------------------------------------------ data
def prepare_data(hparams):
    """The synthetic corpus (``dataset: synthetic``, made if absent), the manifests, ``train_csv``."""
    if hparams["dataset"] == "synthetic":
        ensure_synthetic_corpus(hparams["data_folder"], hparams["synthetic_corpus_options"])
    prepare_recipe_manifests(
        hparams["data_folder"], hparams["manifest_folder"], hparams["train_splits"],
        [hparams["valid_split"], *hparams["test_splits"]], hparams["train_csv"],
        min_duration=hparams["min_duration"], max_duration=None,
    )


def dataio_prepare(hparams, tokenizer):
    """Datasets {"train", "valid", <test split>...} with ``sig``, ``wrd``, ``tokens``, and the
    training loader's arguments (dynamic batching or fixed batches)."""
    csvs = {"train": hparams["train_csv"], "valid": hparams["valid_csv"]}
    for split in hparams["test_splits"]:
        csvs[split] = str(Path(hparams["manifest_folder"]) / f"{split}.csv")
    datasets = {name: audio_dataset(csv, hparams["sample_rate"], sort="ascending" if name == "train" else "descending",
                                    max_duration=hparams["max_duration"] if name == "train" else None)
                for name, csv in csvs.items()}

    @sb.utils.data_pipeline.takes("wrd")
    @sb.utils.data_pipeline.provides("tokens")
    def text_pipeline(wrd):
        return tokenizer.encode(wrd)

    all_sets = list(datasets.values())
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
    if getattr(encoder, "init", "pretrained") != "pretrained":  # the random-initialised twin
        config["encoder_init"] = encoder.init
    save = Path(hparams["save_folder"])
    legacy = {str(save / CONFIG_NAME): encoder.config, str(save / HEAD_CONFIG_NAME): head.config}
    return {"config": config, "legacy": legacy}


def main(argv=None):
    """Run fine-tuning; ``argv`` as on the command line (default sys.argv[1:])."""
    hparams_file, run_opts, overrides, hparams = load_hparams(argv)
    if run_opts.get("precision") == "fp16" and not torch.cuda.is_available():
        raise SystemExit("--precision fp16 needs a CUDA device; use bf16 or fp32 on CPU.")
    init_distributed(run_opts)
    start_experiment(hparams, hparams_file, overrides, **run_configuration(hparams))
    run_on_main(prepare_data, kwargs={"hparams": hparams})
    hparams["lm_path"] = decoding_lm(hparams["lm_path"], hparams["build_lm"], hparams["train_csv"],
                                     hparams["output_folder"], hparams["lm_order"])

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
        brain.test_name = split
        brain.evaluate(datasets[split], min_key="WER", test_loader_kwargs=hparams["test_dataloader_options"],
                       progressbar=hparams["progressbar"])
    return brain


if __name__ == "__main__":
    main()
