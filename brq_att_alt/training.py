"""What every training recipe shares (pre-training, CTC fine-tuning, MP3S probes):

* ``FaultTolerantBrain``: a SpeechBrain Brain whose weights never see a non-finite loss or
  gradient, that stops after too many such batches in a row, and whose checkpoints hold the
  random generator states (exact resume with dropout);
* ``start_experiment``: refuses, before writing anything, an output folder that holds a run
  of another model configuration; then SpeechBrain's experiment folder and the record
  ``<output_folder>/run_config.json``;
* ``init_distributed``: SpeechBrain's DDP set-up with an error that names the fix when
  ``torchrun`` finds no GPU.
"""

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional

import speechbrain as sb
import torch
import yaml
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks
from speechbrain.utils.distributed import if_main_process, is_distributed_initialized, run_on_main

from .checkpointing import RNGStates, SafeCheckpointer

logger = logging.getLogger(__name__)

DEFAULT_MAX_SKIPPED_IN_A_ROW = 20
SKIPPED_REPORT = "skipped_batches.txt"
RUN_CONFIG_NAME = "run_config.json"


class NonFiniteTrainingError(RuntimeError):
    """Too many optimizer steps in a row had a non-finite loss or gradient."""


@register_checkpoint_hooks
class FaultTolerantBrain(sb.core.Brain):
    """Brain whose training step never lets a non-finite loss or gradient reach the weights.

    Per training batch: forward, loss, backward as SpeechBrain's ``fit_batch``; a batch whose
    loss is NaN / Inf (e.g. an audio file with non-finite samples), or that left a non-finite
    value in a module buffer (BatchNorm statistics), marks its gradient-accumulation window
    as bad and its buffers are restored. At the optimizer step, a bad window or a non-finite
    gradient norm means: no optimizer step, gradients dropped, no scheduler step
    (``on_fit_batch_end`` gets ``should_step=False``) and ``optimizer_step`` unchanged.
    The decision is taken jointly by all DDP processes.

    Every skipped step is counted, logged (warning) with the utterance ids of the bad batch
    and appended to ``<output_folder>/skipped_batches.txt``; the epoch's count shows in the
    train log as ``skipped``. ``max_skipped_batches_in_a_row`` (YAML, default 20) skipped
    steps in a row stop the run with ``NonFiniteTrainingError``. Stage losses average the
    finite batch losses only (NaN when there is none, never 0).

    With fp16 (GradScaler), a step whose gradients overflow is skipped and counted the same
    way (and lowers the loss scale). Intra-epoch checkpoints fall on the boundaries of
    gradient-accumulation windows (exact resume).

    It replaces SpeechBrain's ``nonfinite_patience`` / ``skip_nonfinite_grads`` handling
    (which still steps the optimiser after a non-finite loss). The checkpointer must be a
    ``SafeCheckpointer``; the RNG states (``RNGStates``) are added to it.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.checkpointer is not None:
            if not isinstance(self.checkpointer, SafeCheckpointer):
                raise TypeError(
                    f"{type(self).__name__} needs a brq_att_alt.checkpointing.SafeCheckpointer as checkpointer "
                    f"(atomic, finite-only checkpoints), got {type(self.checkpointer).__name__}: set "
                    "`checkpointer: !new:brq_att_alt.checkpointing.SafeCheckpointer` in the YAML."
                )
            self.checkpointer.add_recoverable("rng", RNGStates(), optional_load=True)
        self.skipped_in_a_row = 0  # optimizer steps skipped since the last real one
        self.skipped_total = 0
        self.stage_skipped = 0  # skipped steps in the current training stage
        self.stage_nonfinite = 0  # batches with a non-finite loss in the current stage
        self._window_ids: List[str] = []
        self._window_bad_ids: List[str] = []
        self._window_reasons: List[str] = []
        self._interval_losses: List[float] = []  # finite batch losses since the last step log

    # ------------------------------------------------------------ settings
    @property
    def max_skipped_in_a_row(self) -> int:
        hparams = getattr(self, "hparams", None)
        return int(getattr(hparams, "max_skipped_batches_in_a_row", DEFAULT_MAX_SKIPPED_IN_A_ROW))

    @property
    def log_interval_steps(self) -> int:
        """``log_interval_steps`` of the YAML: a train-log line every that many optimizer steps (0 = none)."""
        return int(getattr(getattr(self, "hparams", None), "log_interval_steps", 0) or 0)

    def interval_stats(self) -> Dict[str, float]:
        """More training figures for the step log, over the batches since the last one (a subclass's:
        pre-training adds the masked-frame accuracy)."""
        return {}

    def log_training_step(self) -> None:
        """One train-log line (``train_logger``; also printed at INFO): optimizer step, epoch, learning
        rate(s), and the mean finite training loss of the batches since the last such line (this
        process's batches)."""
        losses, self._interval_losses = self._interval_losses, []
        meta: Dict[str, object] = {"step": self.optimizer_step}
        counter = getattr(self.hparams, "epoch_counter", None)
        if counter is not None:
            meta["epoch"] = counter.current
        optimizers = self._active_optimizers()
        for name, opt in optimizers.items():
            key = "lr" if len(optimizers) == 1 else f"lr_{name.removesuffix('_optimizer')}"
            meta[key] = opt.param_groups[0]["lr"]
        stats = {"loss": sum(losses) / len(losses) if losses else float("nan"), **self.interval_stats()}
        train_logger = getattr(self.hparams, "train_logger", None)
        if train_logger is not None:
            train_logger.log_stats(stats_meta=meta, train_stats=stats)

    def skip_stats(self) -> Dict[str, int]:
        """``{"skipped": n}`` when steps were skipped in this training stage, else {} (for the log)."""
        return {"skipped": self.stage_skipped} if self.stage_skipped else {}

    # ------------------------------------------------------------ data loading
    def make_dataloader(self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs):
        """SpeechBrain's, with a generator of its own for every DataLoader: creating a loader
        iterator then draws its worker seed from it, not from torch's global generator, so the
        global RNG state saved in a checkpoint is the one the next batch sees."""
        if "generator" not in loader_kwargs:
            seed = int(os.environ.get("SB_GLOBAL_SEED", 0))
            loader_kwargs["generator"] = torch.Generator().manual_seed(seed + int(stage.value))
        return super().make_dataloader(dataset, stage, ckpt_prefix, **loader_kwargs)

    def _should_save_intra_epoch_ckpt(self, last_ckpt_time, steps_since_ckpt):
        """SpeechBrain's decision, postponed to the end of the gradient-accumulation window:
        accumulated gradients are not checkpointed, so a checkpoint inside a window would
        make the resumed run differ."""
        due = super()._should_save_intra_epoch_ckpt(last_ckpt_time, steps_since_ckpt)
        return due and self.step % self.grad_accumulation_factor == 0

    # ------------------------------------------------------------ training step
    def _training_buffers(self) -> List[torch.Tensor]:
        """Floating-point buffers of the modules in training mode (e.g. BatchNorm statistics)."""
        buffers = []
        for module in self.modules.modules():
            if module.training:
                buffers += [b for b in module.buffers(recurse=False) if b.is_floating_point()]
        return buffers

    def fit_batch(self, batch):
        """SpeechBrain's fit_batch with the non-finite guard (see the class doc)."""
        if self.step == 1:  # first batch of an epoch (a mid-epoch resume restores these)
            self.stage_skipped = 0
            self._end_window()
        should_step = (self.step % self.grad_accumulation_factor) == 0
        self.on_fit_batch_start(batch, should_step)
        buffers = self._training_buffers()
        saved = [b.detach().clone() for b in buffers]
        with self.no_sync(not should_step):
            with self.training_ctx:
                outputs = self.compute_forward(batch, sb.Stage.TRAIN)
                loss = self.compute_objectives(outputs, batch, sb.Stage.TRAIN)
            # backward even for a NaN loss: DDP processes must all take part in the all-reduce;
            # the window's gradients are then dropped at the step
            self.scaler.scale(loss / self.grad_accumulation_factor).backward()
        checks = [torch.isfinite(loss.detach()).all()] + [torch.isfinite(b).all() for b in buffers]
        finite = bool(torch.stack([c.to(checks[0].device) for c in checks]).all())
        ids = [str(i) for i in getattr(batch, "id", [])]
        self._window_ids += ids
        if not finite:
            with torch.no_grad():
                for b, old in zip(buffers, saved):
                    b.copy_(old)
            loss_finite = bool(torch.isfinite(loss.detach()).all())
            self._window_bad_ids += ids
            self._window_reasons.append("non-finite loss" if not loss_finite else "non-finite module buffer")
        stepped = self.optimizers_step() if should_step else False
        if self.log_interval_steps > 0:
            if finite:
                self._interval_losses.append(float(loss.detach()))
            if stepped and self.optimizer_step % self.log_interval_steps == 0:
                self.log_training_step()
        self.on_fit_batch_end(batch, outputs, loss, stepped)
        return loss.detach().cpu()

    def _active_optimizers(self) -> Dict[str, torch.optim.Optimizer]:
        if self.optimizers_dict is not None:
            return dict(self.freeze_optimizers(self.optimizers_dict))
        if self.opt_class is not None:
            return {"optimizer": self.optimizer}
        return {}

    def _any_process(self, flag: bool) -> bool:
        if not is_distributed_initialized():
            return flag
        device = self.device if str(self.device).startswith("cuda") else "cpu"
        value = torch.tensor(float(flag), device=device)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        return bool(value.item() > 0)

    def optimizers_step(self) -> bool:
        """Unscale, clip, and step the active optimizers unless the accumulation window was bad
        or its gradient norm is not finite; returns whether the optimizers stepped."""
        optimizers = self._active_optimizers()
        if not optimizers:
            self._end_window()
            return False
        local_bad = bool(self._window_reasons)
        bad = self._any_process(local_bad)
        reason = "; ".join(dict.fromkeys(self._window_reasons)) or "non-finite loss in another process"
        if not bad:
            for opt in optimizers.values():
                self.scaler.unscale_(opt)
            norms = [torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]],
                                                    self.max_grad_norm) for opt in optimizers.values()]
            finite = bool(torch.stack([n.float().cpu() for n in norms]).isfinite().all())
            if not self._any_process(not finite):
                for opt in optimizers.values():
                    self.scaler.step(opt)
                self.scaler.update()
                for opt in optimizers.values():
                    opt.zero_grad(set_to_none=True)
                self.optimizer_step += 1
                self.skipped_in_a_row = 0
                self._end_window()
                return True
            if self.scaler.is_enabled():
                self.scaler.update()  # fp16: lowers the loss scale, as GradScaler does on overflow
            reason = "non-finite gradient" + (" (fp16 overflow?)" if self.scaler.is_enabled() else "")
            local_bad, self._window_bad_ids = True, list(self._window_ids)  # the same in every process
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        self._record_skip(reason, local_bad)
        self._end_window()
        return False

    def _end_window(self) -> None:
        self._window_ids, self._window_bad_ids, self._window_reasons = [], [], []

    def _record_skip(self, reason: str, local_bad: bool) -> None:
        self.skipped_in_a_row += 1
        self.skipped_total += 1
        self.stage_skipped += 1
        ids = self._window_bad_ids if local_bad else []
        rank = torch.distributed.get_rank() if is_distributed_initialized() else None
        hparams = getattr(self, "hparams", None)
        where = f"epoch {hparams.epoch_counter.current}, " if hasattr(hparams, "epoch_counter") else ""
        logger.warning(
            "Skipped an optimizer step (%sbatch %d): %s; utterances: %s. %d skipped in a row (the run stops at %d), "
            "%d in all.", where, self.step, reason, " ".join(ids) or "(in another process)", self.skipped_in_a_row,
            self.max_skipped_in_a_row, self.skipped_total,
        )
        folder = getattr(hparams, "output_folder", None)
        if folder is not None and local_bad:
            line = (f"{where}batch {self.step}{f', rank {rank}' if rank is not None else ''}\t{reason}\t"
                    f"{' '.join(ids) or '(no utterance ids)'}\n")
            with open(Path(folder) / SKIPPED_REPORT, "a", encoding="utf-8") as fh:
                fh.write(line)
        if self.skipped_in_a_row >= self.max_skipped_in_a_row:
            raise NonFiniteTrainingError(
                f"Training stopped: {self.skipped_in_a_row} optimizer steps in a row had a non-finite loss or "
                f"gradient ({reason}; last utterances: {' '.join(ids) or 'in another process'}). None of them "
                "changed the weights and the checkpoints hold finite weights only. Check the audio of the "
                f"listed utterances (see {SKIPPED_REPORT} in the output folder) and the learning rate; "
                "max_skipped_batches_in_a_row sets how many are tolerated."
            )

    # ------------------------------------------------------------ loss averages
    def update_average(self, loss, avg_loss):
        """Running mean of the finite batch losses of the stage (NaN while there is none)."""
        if self.step == 1:
            self.stage_nonfinite = 0
        if not torch.isfinite(loss):
            self.stage_nonfinite += 1
            return float("nan") if self.step == self.stage_nonfinite else avg_loss
        n = self.step - self.stage_nonfinite
        if n == 1:
            return float(loss)
        return avg_loss + (float(loss) - avg_loss) / n

    # ------------------------------------------------------------ checkpoint
    @mark_as_saver
    def _save(self, path):
        state = {
            "step": self.step, "avg_train_loss": float(self.avg_train_loss), "optimizer_step": self.optimizer_step,
            "skipped_in_a_row": self.skipped_in_a_row, "skipped_total": self.skipped_total,
            "stage_skipped": self.stage_skipped, "stage_nonfinite": self.stage_nonfinite,
        }
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(yaml.dump(state))

    @mark_as_loader
    def _recover(self, path, end_of_epoch):
        sb.core.Brain._recover(self, path, end_of_epoch)
        with open(path, encoding="utf-8") as fh:
            state = yaml.safe_load(fh)
        for key in ("skipped_in_a_row", "skipped_total", "stage_skipped", "stage_nonfinite"):
            setattr(self, key, int(state.get(key, 0)))


# ---------------------------------------------------------------- distributed
def init_distributed(run_opts) -> None:
    """``ddp_init_group``; "Not enough GPUs" becomes an error that names ``--distributed_backend=gloo``."""
    try:
        sb.utils.distributed.ddp_init_group(run_opts)
    except ValueError as err:
        if "Not enough GPUs" not in str(err):
            raise
        raise SystemExit(
            f"torchrun started a process for local rank {os.environ.get('LOCAL_RANK')} but this machine has "
            f"{torch.cuda.device_count()} CUDA GPU(s), and the default backend (nccl) needs one GPU per process. "
            "On CPUs add --distributed_backend=gloo --device=cpu; on GPUs use --nproc_per_node <= the GPU count."
        ) from err


# ---------------------------------------------------------------- run configuration
def _normalized(value):
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _flatten(value, prefix="") -> Dict[str, object]:
    if isinstance(value, dict):
        out: Dict[str, object] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def config_differences(old: dict, new: dict, limit: int = 6) -> List[str]:
    """``key: old -> new`` for the (flattened) keys whose values differ."""
    a, b = _flatten(_normalized(old)), _flatten(_normalized(new))
    diffs = [f"{k}: {a.get(k, '(absent)')!r} -> {b.get(k, '(absent)')!r}" for k in sorted(set(a) | set(b))
             if a.get(k, "(absent)") != b.get(k, "(absent)")]
    return diffs[:limit] + (["..."] if len(diffs) > limit else [])


def module_summary(module: torch.nn.Module) -> dict:
    """Class, parameter count and a hash of the state dict's names and shapes of a module."""
    shapes = ";".join(f"{k}:{tuple(v.shape)}" for k, v in module.state_dict().items())
    return {
        "class": type(module).__name__,
        "parameters": sum(p.numel() for p in module.parameters()),
        "shapes_sha1": hashlib.sha1(shapes.encode()).hexdigest()[:12],
    }


def check_run_config(output_folder, config: dict, legacy: Optional[Dict[str, dict]] = None) -> None:
    """Stop (SystemExit) if ``output_folder`` holds a run of another configuration; reads only.

    The recorded ``run_config.json`` is compared with ``config``, except its ``info`` entry.
    Folders written before that record existed are compared through ``legacy``:
    {path relative to output_folder: the JSON content it must have}, e.g. the
    ``save/brq_model.json`` of a pre-training run.
    """
    folder = Path(output_folder)
    record = folder / RUN_CONFIG_NAME
    pairs = []
    if record.is_file():
        old = json.loads(record.read_text(encoding="utf-8"))
        pairs.append((RUN_CONFIG_NAME, {k: v for k, v in old.items() if k != "info"},
                      {k: v for k, v in config.items() if k != "info"}))
    else:
        for rel, expected in (legacy or {}).items():
            if (folder / rel).is_file():
                pairs.append((rel, json.loads((folder / rel).read_text(encoding="utf-8")), expected))
    for name, old, new in pairs:
        if _normalized(old) != _normalized(new):
            raise SystemExit(
                f"{folder} holds a run of another model configuration ({name}: "
                f"{'; '.join(config_differences(old, new))}). Nothing was written. To start this run, pass "
                f"another --output_folder, or delete {folder} if its run is no longer needed; to resume that "
                f"run, use the settings it was started with (its hyperparams.yaml)."
            )


def write_run_config(output_folder, config: dict) -> Path:
    """Write ``<output_folder>/run_config.json`` (atomically)."""
    path = Path(output_folder) / RUN_CONFIG_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_normalized(config), indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
    return path


def start_experiment(hparams: dict, hparams_file: str, overrides, config: dict,
                     legacy: Optional[Dict[str, dict]] = None) -> None:
    """``check_run_config`` (nothing is written if it refuses), then SpeechBrain's
    ``create_experiment_directory``, the ``save_folder`` and ``run_config.json`` (main process)."""
    check_run_config(hparams["output_folder"], config, legacy)
    sb.create_experiment_directory(experiment_directory=hparams["output_folder"], hyperparams_to_save=hparams_file,
                                   overrides=overrides)
    if hparams.get("save_folder"):
        run_on_main(os.makedirs, args=[hparams["save_folder"]], kwargs={"exist_ok": True})
    run_on_main(write_run_config, args=[hparams["output_folder"], config])
    if if_main_process():
        logger.info("Run configuration recorded in %s", Path(hparams["output_folder"]) / RUN_CONFIG_NAME)
