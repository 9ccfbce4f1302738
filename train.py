#!/usr/bin/env python3
"""BEST-RQ pre-training of a Conformer whose self-attention is a swappable token mixer.

Usage::

    python train.py hparams/brq_mhsa.yaml --data_folder /data/LibriSpeech
    python train.py hparams/brq_mhsa.yaml --attention_type=pom      # swap the mixer
    python train.py hparams/brq_tiny.yaml                            # CPU demo, synthetic corpus
    torchrun --nproc_per_node=8 train.py hparams/brq_mamba.yaml --data_folder ...

The data folder has the LibriSpeech layout. When it is the YAML's ``synthetic_folder``
and does not exist yet, the synthetic espeak-ng corpus is generated there first.
A run resumes from its newest readable checkpoint (intra-epoch ones included) when
started again with the same output folder; it refuses, before writing anything, an
output folder that holds a run of another model configuration. A batch with a
non-finite loss or gradient (e.g. NaN audio) is skipped and logged
(``brq_att_alt.training.FaultTolerantBrain``); checkpoints are atomic and finite
(``brq_att_alt.checkpointing.SafeCheckpointer``).
"""

import logging
import sys
from pathlib import Path

import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.utils.distributed import run_on_main

from brq_att_alt.data import prepare_recipe_manifests, read_audio
from brq_att_alt.hparams import load_hparams as load_recipe_hparams
from brq_att_alt.masking import encoder_frame_mask
from brq_att_alt.mixers import check_mixer_name
from brq_att_alt.model import count_parameters
from brq_att_alt.pretrained import CONFIG_NAME, save_model_config
from brq_att_alt.training import FaultTolerantBrain, init_distributed, start_experiment

logger = logging.getLogger(__name__)


class BestRQBrain(FaultTolerantBrain):
    """Masked prediction of random-projection-quantised filterbank frames."""

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        wavs, wav_lens = batch.sig
        feats, padding_mask = self.hparams.compute_features(wavs, wav_lens)
        model = self.modules.model
        targets = getattr(model, "module", model).targets(feats)  # (B, T/4), from unmasked feats
        masked_feats, frame_mask = self.hparams.masker(feats, padding_mask)
        out = model(masked_feats, padding_mask)
        encoder_mask = encoder_frame_mask(frame_mask, self.hparams.stack_frames)[: targets.shape[1]]
        return out["logits"], out["padding_mask"], targets, encoder_mask

    def compute_objectives(self, predictions, batch, stage):
        logits, padding_mask, targets, encoder_mask = predictions
        selected = encoder_mask.unsqueeze(0) & ~padding_mask  # masked and valid frames
        logits, targets = logits[selected].float(), targets[selected]
        loss = F.cross_entropy(logits, targets)
        with torch.no_grad():
            self.correct += (logits.argmax(-1) == targets).sum().item()
            self.total += targets.numel()
        return loss

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        if should_step:
            self.hparams.noam_annealing(self.optimizer)

    def on_stage_start(self, stage, epoch=None):
        self.correct, self.total = 0, 0

    def on_stage_end(self, stage, stage_loss, epoch=None):
        stats = {"loss": stage_loss, "acc": self.correct / max(self.total, 1)}
        if stage == sb.Stage.TRAIN:
            self.train_stats = {**stats, **self.skip_stats()}
            return
        if stage == sb.Stage.VALID:
            lr = self.optimizer.param_groups[0]["lr"]
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "steps": self.optimizer_step, "lr": lr},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(
                end_of_epoch=True,
                meta={"acc": stats["acc"], "epoch": epoch, "steps": self.optimizer_step},
                num_to_keep=self.hparams.checkpoints_to_keep,
            )
        elif stage == sb.Stage.TEST:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current}, test_stats=stats
            )


def dataio_prepare(hparams):
    """CSV manifests -> train/valid DynamicItemDatasets with a robust audio pipeline."""
    datasets = {}
    for name, csv in (("train", hparams["train_csv"]), ("valid", hparams["valid_csv"])):
        data = sb.dataio.dataset.DynamicItemDataset.from_csv(csv_path=csv)
        datasets[name] = data.filtered_sorted(
            sort_key="duration",
            key_min_value={"duration": hparams["min_duration"]},
            key_max_value={"duration": hparams["max_duration"]},
        )
        if len(datasets[name]) == 0:
            raise ValueError(
                f"No utterance of {csv} lies within min_duration={hparams['min_duration']} and "
                f"max_duration={hparams['max_duration']} s: check the data or these keys."
            )

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return read_audio(wav, sample_rate=hparams["sample_rate"])

    sb.dataio.dataset.add_dynamic_item(list(datasets.values()), audio_pipeline)
    sb.dataio.dataset.set_output_keys(list(datasets.values()), ["id", "sig"])

    train_sampler = sb.dataio.sampler.DynamicBatchSampler(
        datasets["train"],
        max_batch_length=hparams["max_batch_length"],
        num_buckets=hparams["num_buckets"],
        length_func=lambda x: x["duration"],
        shuffle=hparams["shuffle"],
        batch_ordering="random",
        seed=hparams["seed"],
    )
    return datasets["train"], datasets["valid"], train_sampler


def prepare_data(hparams):
    """Synthetic corpus if it is the data folder and absent; manifests, and ``train_csv``."""
    prepare_recipe_manifests(
        hparams["data_folder"], hparams["manifest_folder"], hparams["train_splits"], [hparams["valid_split"]],
        hparams["train_csv"], min_duration=hparams["min_duration"], max_duration=hparams["max_duration"],
        synthetic_folder=hparams["synthetic_folder"], synthetic_options=hparams["synthetic_corpus_options"],
    )


def load_hparams(argv):
    """Shared HyperPyYAML loading, then a clear error for an unknown mixer name."""
    hparams_file, run_opts, overrides, hparams = load_recipe_hparams(argv)
    check_mixer_name(hparams["attention_type"])
    return hparams_file, run_opts, overrides, hparams


def main(argv=None, brain_class=BestRQBrain):
    """Run pre-training; ``argv`` as on the command line (default sys.argv[1:])."""
    argv = sys.argv[1:] if argv is None else argv
    hparams_file, run_opts, overrides, hparams = load_hparams(argv)
    if run_opts.get("precision") == "fp16" and not torch.cuda.is_available():
        raise SystemExit("--precision fp16 needs a CUDA device; use bf16 or fp32 on CPU.")

    init_distributed(run_opts)
    model_config = hparams["model"].config
    start_experiment(hparams, hparams_file, overrides, config={"recipe": "pretrain", "model": model_config},
                     legacy={str(Path(hparams["save_folder"]) / CONFIG_NAME): model_config})
    run_on_main(prepare_data, kwargs={"hparams": hparams})
    run_on_main(save_model_config, args=[hparams["model"], hparams["save_folder"]])

    model = hparams["model"]
    logger.info(
        "BEST-RQ model: mixer %s, d_model %d, %.2fM trainable parameters",
        hparams["attention_type"], model.config["d_model"], count_parameters(model) / 1e6,
    )
    train_data, valid_data, train_sampler = dataio_prepare(hparams)

    brain = brain_class(
        modules=hparams["modules"],
        opt_class=hparams["optimizer"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.fit(
        brain.hparams.epoch_counter,
        train_data,
        valid_data,
        train_loader_kwargs={"batch_sampler": train_sampler, "num_workers": hparams["num_workers"]},
        valid_loader_kwargs=hparams["valid_dataloader_options"],
        progressbar=hparams["progressbar"],
    )
    return brain


if __name__ == "__main__":
    main()
