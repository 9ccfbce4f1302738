#!/usr/bin/env python3
"""BEST-RQ pre-training of a Conformer whose self-attention is a swappable token mixer.

Usage::

    python train.py hparams/brq_mhsa.yaml --data_folder /data/LibriSpeech
    python train.py hparams/brq_mhsa.yaml --attention_type=pom      # swap the mixer
    python train.py hparams/brq_tiny.yaml                            # CPU demo, synthetic corpus
    torchrun --nproc_per_node=8 train.py hparams/brq_mamba.yaml --data_folder ...

The data folder has the LibriSpeech layout. With ``dataset: synthetic`` in the YAML (the
tiny one's default) the synthetic espeak-ng corpus is generated there first if absent.
The last line printed is the run's output folder (the downstream recipes'
``--pretrained_path``).
A run resumes from its newest readable checkpoint (intra-epoch ones included) when
started again with the same output folder; it refuses, before writing anything, an
output folder that holds a run of another model configuration. A batch with a
non-finite loss or gradient (e.g. NaN audio) is skipped and logged
(``brq_att_alt.training.FaultTolerantBrain``); checkpoints are atomic and finite
(``brq_att_alt.checkpointing.SafeCheckpointer``).
"""

import logging
from pathlib import Path

import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.utils.distributed import if_main_process, run_on_main

from brq_att_alt.data.datasets import audio_dataset
from brq_att_alt.data.librispeech import prepare_recipe_manifests
from brq_att_alt.data.synthetic import ensure_synthetic_corpus
from brq_att_alt.hparams import load_hparams
from brq_att_alt.masking import encoder_frame_mask
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
        self._counted_at_last_log = (0, 0)

    def interval_stats(self):
        """Masked-frame accuracy of the training batches since the last step log."""
        correct, total = self.correct - self._counted_at_last_log[0], self.total - self._counted_at_last_log[1]
        self._counted_at_last_log = (self.correct, self.total)
        return {"acc": correct / total} if total else {}

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
    """CSV manifests -> train/valid datasets (``sig``) and the dynamic batch sampler of training."""
    train, valid = (audio_dataset(hparams[key], hparams["sample_rate"], min_duration=hparams["min_duration"],
                                  max_duration=hparams["max_duration"]) for key in ("train_csv", "valid_csv"))
    sb.dataio.dataset.set_output_keys([train, valid], ["id", "sig"])
    train_sampler = sb.dataio.sampler.DynamicBatchSampler(
        train,
        max_batch_length=hparams["max_batch_length"],
        num_buckets=hparams["num_buckets"],
        length_func=lambda x: x["duration"],
        shuffle=hparams["shuffle"],
        batch_ordering="random",
        seed=hparams["seed"],
    )
    return train, valid, train_sampler


def prepare_data(hparams):
    """The synthetic corpus (``dataset: synthetic``, made if absent), the manifests, ``train_csv``."""
    if hparams["dataset"] == "synthetic":
        ensure_synthetic_corpus(hparams["data_folder"], hparams["synthetic_corpus_options"])
    prepare_recipe_manifests(
        hparams["data_folder"], hparams["manifest_folder"], hparams["train_splits"], [hparams["valid_split"]],
        hparams["train_csv"], min_duration=hparams["min_duration"], max_duration=hparams["max_duration"],
    )


def main(argv=None):
    """Run pre-training; ``argv`` as on the command line (default sys.argv[1:])."""
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

    brain = BestRQBrain(
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
    brain = main()
    if if_main_process():
        print(brain.hparams.output_folder)  # the last line (scripts/demo.sh reads it)
