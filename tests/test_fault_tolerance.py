"""Issue 10: no run silently loses work (bad audio, kills, full disks, reused folders).

Exact resume with dropout is tested in test_pretrain.py (test_interrupted_run_resumes_exactly).

Non-finite audio is injected into a recipe's training manifest right after its data step
(``with_nan_utterance``), as if preparation had let it through, so these tests do not
depend on what preparation detects. The NaN file is a float32 WAV (soundfile FLOAT).
"""

import csv
import errno
import hashlib
import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import speechbrain as sb
import torch
import yaml

from brq_att_alt.checkpointing import (
    FILES_KEY,
    CheckpointError,
    DiskFullError,
    NonFiniteCheckpointError,
    SafeCheckpointer,
    checkpoint_problem,
)
from brq_att_alt.hparams import load_hparams
from brq_att_alt.training import SKIPPED_REPORT, FaultTolerantBrain, NonFiniteTrainingError, init_distributed
from helpers import MP3S, REPO_ROOT as ROOT, TINY_MODEL, load_script, save_run, tiny_model_args

NAN_ID = "nan-utt-0000"
TINY_MODEL_ARGS = tiny_model_args(codebook_size=256)

pretrain = load_script(ROOT / "train.py")


def run_args(corpus, out, *extra):
    return [
        str(ROOT / "hparams" / "brq_tiny.yaml"), f"--data_folder={corpus}", f"--output_folder={out}",
        "--train_splits=[train-clean-100]", "--max_batch_length=6", "--num_buckets=2", "--attention_type=fastformer",
        "--progressbar=False", "--ckpt_interval_minutes=0", *TINY_MODEL_ARGS, *extra,
    ]


def write_nan_wav(path: Path, seconds: float) -> Path:
    """A float32 WAV of low noise with a stretch of NaN (and one Inf) samples."""
    rng = np.random.default_rng(0)
    data = (0.01 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
    data[len(data) // 3: len(data) // 2] = np.nan
    data[-10] = np.inf
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, 16000, subtype="FLOAT")
    return path


def add_nan_row(csv_path, nan_wav: Path) -> None:
    """Append a copy of the manifest's first row, with ID NAN_ID and the NaN file (once)."""
    with open(csv_path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns, rows = reader.fieldnames, list(reader)
    if any(r["ID"] == NAN_ID for r in rows):
        return
    row = dict(rows[0], ID=NAN_ID, wav=str(nan_wav))
    if "duration" in row:
        row["duration"] = str(sf.info(str(nan_wav)).duration)
    with open(csv_path, "a", newline="", encoding="utf-8") as fh:
        csv.DictWriter(fh, fieldnames=columns, lineterminator="\n").writerow(row)


def with_nan_utterance(prepare, csv_of, nan_wav):
    """Wrap a data step: after it, its training manifest (``csv_of(hparams, result)``) holds NAN_ID."""

    def wrapped(hparams, *args, **kwargs):
        result = prepare(hparams, *args, **kwargs)
        add_nan_row(csv_of(hparams, result), nan_wav)
        return result

    return wrapped


def assert_finite_module(module):
    for name, value in module.state_dict().items():
        if value.is_floating_point():
            assert torch.isfinite(value).all(), name


def assert_finite_checkpoints(save_folder: Path):
    ckpts = sorted(save_folder.glob("CKPT+*"))
    assert ckpts
    for ckpt in ckpts:
        assert checkpoint_problem(ckpt) is None
        for f in ckpt.glob("*.ckpt"):
            if f.name in ("brain.ckpt", "counter.ckpt") or f.name.startswith("dataloader"):
                continue
            state = torch.load(f, map_location="cpu", weights_only=False)
            tensors = state.values() if isinstance(state, dict) else []
            for t in tensors:
                if torch.is_tensor(t) and t.is_floating_point():
                    assert torch.isfinite(t).all(), f


def folder_snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(folder.rglob("*"))}


# =================================================================== 1. non-finite audio
@pytest.fixture
def nan_in_pretraining(tmp_path, monkeypatch):
    """train.py with a NaN utterance (NAN_ID) added to its training manifest."""
    nan_wav = write_nan_wav(tmp_path / "bad" / "nan.wav", 1.6)
    monkeypatch.setattr(pretrain, "prepare_data",
                        with_nan_utterance(pretrain.prepare_data, lambda hp, _: hp["train_csv"], nan_wav))
    return pretrain


@pytest.mark.slow
def test_nan_audio_in_pretraining_is_skipped_and_reported(tiny_corpus, tmp_path, nan_in_pretraining):
    out = tmp_path / "run"
    brain = nan_in_pretraining.main(run_args(tiny_corpus, out, "--number_of_epochs=2"))
    # one bad batch per epoch: skipped, counted, with the utterance id
    assert brain.skipped_total == 2 and brain.skipped_in_a_row == 0
    report = (out / SKIPPED_REPORT).read_text().splitlines()
    assert len(report) == 2 and all(NAN_ID in line and "non-finite loss" in line for line in report)
    warnings = [line for line in (out / "log.txt").read_text().splitlines() if "Skipped an optimizer step" in line]
    assert len(warnings) == 2 and all(NAN_ID in line for line in warnings)
    # finite weights in memory and in every checkpoint
    assert_finite_module(brain.modules.model)
    assert_finite_checkpoints(out / "save")
    # the epoch losses are the mean of the finite batch losses, never 0, and the skips are in the log
    log = (out / "train_log.txt").read_text()
    losses = [float(x) for x in re.findall(r"train loss: ([-\d.e+]+)", log)]
    assert len(losses) == 2 and all(np.isfinite(losses)) and all(x > 0.1 for x in losses), log
    assert log.count("train skipped: 1") == 2, log


@pytest.mark.slow
def test_nan_audio_in_a_row_stops_the_run(tiny_corpus, tmp_path, nan_in_pretraining):
    out = tmp_path / "run"
    with pytest.raises(NonFiniteTrainingError, match=NAN_ID) as err:
        nan_in_pretraining.main(run_args(tiny_corpus, out, "--number_of_epochs=1", "--max_skipped_batches_in_a_row=1"))
    assert "max_skipped_batches_in_a_row" in str(err.value)
    assert NAN_ID in (out / SKIPPED_REPORT).read_text()


def tiny_pretrained_folder(root: Path) -> Path:
    from brq_att_alt.model import BestRQModel

    torch.manual_seed(0)
    return save_run(BestRQModel(mixer="fastformer", **TINY_MODEL), root / "save").parent


FINETUNE = ROOT / "recipes" / "finetune_ctc"


def finetune_args(pretrained, corpus, out, *extra):
    return [str(FINETUNE / "hparams" / "finetune_ctc_tiny.yaml"), f"--pretrained_path={pretrained}",
            f"--data_folder={corpus}", f"--output_folder={out}", "--test_splits=[test-clean]",
            "--progressbar=False", "--beam_size=2", "--bootstrap_samples=50", "--head_hidden=16",
            "--max_batch_length=8", "--number_of_epochs=1", "--augment=False", *extra]


@pytest.mark.slow
def test_nan_audio_in_finetuning_is_skipped_and_reported(tiny_corpus, tmp_path, monkeypatch):
    recipe = load_script(FINETUNE / "train.py")
    nan_wav = write_nan_wav(tmp_path / "bad" / "nan.wav", 1.6)
    monkeypatch.setattr(recipe, "prepare_data",
                        with_nan_utterance(recipe.prepare_data, lambda hp, _: hp["train_csv"], nan_wav))
    out = tmp_path / "ft"
    brain = recipe.main(finetune_args(tiny_pretrained_folder(tmp_path / "pt"), tiny_corpus, out))
    assert brain.skipped_total == 1
    assert NAN_ID in (out / SKIPPED_REPORT).read_text()
    assert_finite_module(brain.modules.encoder)
    assert_finite_module(brain.modules.head)
    assert_finite_checkpoints(out / "save")  # the "best" checkpoint is finite
    assert (out / "wer_test-clean.txt").is_file()


@pytest.mark.slow
def test_nan_audio_in_a_probe_is_skipped_and_reported(tiny_corpus, tmp_path, monkeypatch):
    module = load_script(MP3S / "SLURP_IC" / "train.py")
    nan_wav = write_nan_wav(tmp_path / "bad" / "nan.wav", 1.6)
    monkeypatch.setattr(module, "prepare",
                        with_nan_utterance(module.prepare, lambda hp, paths: paths["train"], nan_wav))
    out = tmp_path / "probe"
    yaml_file = MP3S / "SLURP_IC" / "linear" / "hparams" / "linear.yaml"
    brain = module.main([str(yaml_file), f"--pretrained_path={tiny_pretrained_folder(tmp_path / 'pt')}",
                         f"--output_folder={out}", f"--data_folder={tiny_corpus}", "--number_of_epochs=2",
                         "--batch_size=4",
                         "--synthetic_splits={train: [train-clean-100], valid: [dev-clean], test: [test-clean]}"])
    assert brain.skipped_total == 2
    report = (out / SKIPPED_REPORT).read_text()
    assert report.count(NAN_ID) == 2
    assert_finite_module(brain.modules.weighted_sum)
    assert_finite_module(brain.modules.probe)
    assert_finite_checkpoints(out / "save")
    assert json.loads((out / "mp3s_metrics.json").read_text())["metrics"]["accuracy"]["value"] >= 0


# ----------------------------------------------- the step guard on a toy Brain (fast)
class ToyBrain(FaultTolerantBrain):
    """Linear + BatchNorm regression. A batch whose first value is 99 has a NaN loss;
    one whose first value is -99 has a finite loss but NaN gradients."""

    def compute_forward(self, batch, stage):
        return self.modules.net(batch.to(self.device))

    def compute_objectives(self, predictions, batch, stage):
        loss = predictions.pow(2).mean()
        if float(batch[0, 0]) == 99:
            return loss * float("nan")
        if float(batch[0, 0]) == -99:  # sqrt'(0) is Inf: a finite loss with NaN gradients
            return loss + 0.0 * torch.sqrt(predictions.sum() * 0)
        return loss

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        self.stepped = getattr(self, "stepped", []) + [should_step]


def toy_brain(tmp_path, **hparams):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 1))
    checkpointer = SafeCheckpointer(tmp_path / "save", {"net": net})
    return ToyBrain(modules={"net": net}, opt_class=lambda p: torch.optim.SGD(p, lr=0.1),
                    hparams={"output_folder": str(tmp_path), **hparams},
                    run_opts={"device": "cpu", "max_grad_norm": 5.0, **hparams.pop("run_opts", {})},
                    checkpointer=checkpointer)


def toy_data(kinds):
    batches = []
    for kind in kinds:
        x = torch.randn(4, 3)
        if kind != "ok":
            x[0, 0] = 99.0 if kind == "nan_loss" else -99.0
            if kind == "nan_loss":
                x[1] = float("nan")  # also poisons the BatchNorm statistics
        batches.append(x)
    return batches


def test_step_guard_skips_nan_loss_and_nan_gradient(tmp_path):
    brain = toy_brain(tmp_path)
    data = toy_data(["ok", "nan_loss", "ok", "nan_grad", "ok"])
    brain.fit(range(1), data, train_loader_kwargs={"batch_size": None})
    assert brain.optimizer_step == 3 and brain.skipped_total == 2
    assert brain.stepped == [True, False, True, False, True]  # no scheduler step for skipped ones
    assert_finite_module(brain.modules.net)  # BatchNorm running stats restored too
    lines = (tmp_path / SKIPPED_REPORT).read_text().splitlines()
    assert "non-finite loss" in lines[0] and "non-finite gradient" in lines[1]


def test_step_guard_drops_the_whole_accumulation_window(tmp_path):
    brain = toy_brain(tmp_path, run_opts={"grad_accumulation_factor": 2})
    brain.fit(range(1), toy_data(["ok", "nan_loss", "ok", "ok"]), train_loader_kwargs={"batch_size": None})
    assert brain.optimizer_step == 1 and brain.skipped_total == 1
    assert brain.stepped == [False, False, False, True]


def test_step_guard_patience_and_loss_average(tmp_path):
    brain = toy_brain(tmp_path, max_skipped_batches_in_a_row=3)
    with pytest.raises(NonFiniteTrainingError, match="3 optimizer steps in a row"):
        brain.fit(range(1), toy_data(["ok", "nan_loss", "nan_grad", "ok", "nan_loss", "nan_loss", "nan_loss"]),
                  train_loader_kwargs={"batch_size": None})
    assert brain.optimizer_step == 2 and brain.skipped_total == 5
    # update_average: finite losses only; NaN (not 0) while there is none
    brain.step = 1
    assert np.isnan(brain.update_average(torch.tensor(float("nan")), 0.0))
    brain.step = 2
    assert brain.update_average(torch.tensor(2.0), float("nan")) == 2.0
    brain.step = 3
    assert brain.update_average(torch.tensor(4.0), 2.0) == 3.0


def test_brain_needs_a_safe_checkpointer(tmp_path):
    net = torch.nn.Linear(2, 1)
    with pytest.raises(TypeError, match="SafeCheckpointer"):
        FaultTolerantBrain(modules={"net": net}, run_opts={"device": "cpu"},
                           checkpointer=sb.utils.checkpoints.Checkpointer(tmp_path, {"net": net}))


# =================================================================== checkpoints
def test_checkpoint_with_nan_weights_is_refused_and_rotation_keeps_the_newest(tmp_path):
    net = torch.nn.Linear(3, 3)
    ckpt = SafeCheckpointer(tmp_path / "save", {"net": net})
    first = ckpt.save_and_keep_only(meta={"n": 1}) or ckpt.find_checkpoint()
    with torch.no_grad():
        net.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteCheckpointError, match=r"net\.weight.*" + re.escape(first.path.name)):
        ckpt.save_and_keep_only(num_to_keep=1)
    assert [c.path for c in ckpt.list_checkpoints()] == [first.path]
    assert not list((tmp_path / "save").glob(".tmp-*"))
    # a broken newer folder is never counted nor deleted by rotation
    with torch.no_grad():
        net.weight[0, 0] = 0.0
    second = ckpt.save_checkpoint()
    (second.path / "net.ckpt").write_bytes(b"")
    third = ckpt.save_and_keep_only(num_to_keep=1) or ckpt.find_checkpoint()
    names = sorted(p.name for p in (tmp_path / "save").iterdir())
    assert names == sorted([second.path.name, third.path.name])


def test_checkpointer_writes_nothing_until_it_saves(tmp_path):
    SafeCheckpointer(tmp_path / "out" / "save", {"net": torch.nn.Linear(2, 2)})
    assert not (tmp_path / "out").exists()


def test_kill_during_save_leaves_no_checkpoint_and_the_leftover_is_removed(tmp_path, caplog):
    net = torch.nn.Linear(3, 3)

    class Killer(torch.nn.Module):
        def state_dict(self, *args, **kwargs):
            raise KeyboardInterrupt("kill during save")

    ckpt = SafeCheckpointer(tmp_path / "save", {"net": net})
    good = ckpt.save_checkpoint()
    ckpt.add_recoverable("killer", Killer())
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint()
    assert [p.name for p in (tmp_path / "save").iterdir()] == [good.path.name]
    # a SIGKILL leaves the temporary folder: removed, with a warning, at the next start
    leftover = tmp_path / "save" / ".tmp-CKPT+2099-01-01+00-00-00+00"
    leftover.mkdir()
    (leftover / "net.ckpt").write_bytes(b"half")
    fresh = SafeCheckpointer(tmp_path / "save", {"net": torch.nn.Linear(3, 3)})
    with caplog.at_level(logging.WARNING):
        assert fresh.recover_if_possible().path == good.path
    assert not leftover.exists() and leftover.name in caplog.text


def test_disk_full_during_save_is_reported_and_leaves_the_older_checkpoints(tmp_path, monkeypatch):
    net, opt_net = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
    ckpt = SafeCheckpointer(tmp_path / "save", {"net": net, "other": opt_net})
    good = ckpt.save_checkpoint()
    real_save = torch.save

    def full_disk_save(obj, f, *args, **kwargs):
        if hasattr(f, "write"):
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk_save)
    with pytest.raises(DiskFullError, match=r"Disk full .* in " + str(tmp_path / "save")) as err:
        ckpt.save_checkpoint()
    assert good.path.name in str(err.value)
    monkeypatch.setattr(torch, "save", real_save)
    assert [p.name for p in (tmp_path / "save").iterdir()] == [good.path.name]
    assert ckpt.recover_if_possible().path == good.path


@pytest.mark.parametrize("damage", ["truncated", "missing file", "unreadable CKPT.yaml", "truncated, no size record",
                                    "missing file, no size record"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous(damage, tmp_path, caplog):
    net = torch.nn.Linear(3, 3)
    ckpt = SafeCheckpointer(tmp_path / "save", {"net": net})
    old = ckpt.save_checkpoint()
    with torch.no_grad():
        net.weight.add_(1.0)
    new = ckpt.save_checkpoint()
    meta = new.path / "CKPT.yaml"
    if "no size record" in damage:  # as plain SpeechBrain writes them
        data = yaml.safe_load(meta.read_text())
        data.pop(FILES_KEY)
        meta.write_text(yaml.dump(data))
    if damage.startswith("truncated"):
        content = (new.path / "net.ckpt").read_bytes()
        (new.path / "net.ckpt").write_bytes(content[: len(content) // 2])
    elif damage.startswith("missing file"):
        (new.path / "net.ckpt").unlink()
    else:
        meta.write_text("unixtime: [unclosed\n")
    fresh = torch.nn.Linear(3, 3)
    restart = SafeCheckpointer(tmp_path / "save", {"net": fresh})
    with caplog.at_level(logging.WARNING):
        loaded = restart.recover_if_possible()
    assert loaded.path == old.path
    assert new.path.name in caplog.text
    assert torch.equal(fresh.weight, torch.load(old.path / "net.ckpt")["weight"])
    assert new.path.exists()  # left for inspection


def test_no_readable_checkpoint_is_an_error_not_a_fresh_start(tmp_path):
    net = torch.nn.Linear(3, 3)
    ckpt = SafeCheckpointer(tmp_path / "save", {"net": net})
    only = ckpt.save_checkpoint()
    (only.path / "net.ckpt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=re.escape(only.path.name)):
        SafeCheckpointer(tmp_path / "save", {"net": net}).recover_if_possible()


@pytest.fixture(scope="module")
def pretrain_run(tiny_corpus, tmp_path_factory):
    """A 2-epoch tiny pre-training run (two end-of-epoch checkpoints kept)."""
    out = tmp_path_factory.mktemp("pretrain_run") / "run"
    brain = pretrain.main(run_args(tiny_corpus, out, "--number_of_epochs=2"))
    return out, brain.optimizer_step


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "half-written"])
def test_restart_with_a_damaged_newest_checkpoint_resumes_from_the_previous(damage, pretrain_run, tiny_corpus,
                                                                             tmp_path):
    source, steps = pretrain_run
    out = tmp_path / "run"
    shutil.copytree(source, out)
    ckpts = sorted((out / "save").glob("CKPT+*"), key=lambda p: yaml.safe_load((p / "CKPT.yaml").read_text())["epoch"])
    assert len(ckpts) == 2
    newest = ckpts[-1]
    if damage == "truncated":
        content = (newest / "model.ckpt").read_bytes()
        (newest / "model.ckpt").write_bytes(content[:1000])
    else:  # a kill during a plain SpeechBrain save: CKPT.yaml written, files missing
        for f in newest.glob("*.ckpt"):
            f.unlink()
    brain = pretrain.main(run_args(tiny_corpus, out, "--number_of_epochs=3"))
    warnings = [line for line in (out / "log.txt").read_text().splitlines() if "WARNING" in line]
    assert any(newest.name in line for line in warnings), warnings
    assert brain.hparams.epoch_counter.current == 3
    assert brain.optimizer_step == steps // 2 * 3  # epoch 1 from the checkpoint, then epochs 2 and 3
    log = (out / "train_log.txt").read_text()
    assert [int(e) for e in re.findall(r"^epoch: (\d+)", log, flags=re.M)] == [1, 2, 2, 3]


@pytest.mark.slow
def test_disk_full_during_training_then_restart(tiny_corpus, tmp_path, monkeypatch):
    real_save = torch.save
    state = {"full": False}

    def maybe_full(obj, f, *args, **kwargs):
        if state["full"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    class FillsTheDisk(pretrain.BestRQBrain):
        def on_fit_batch_end(self, batch, outputs, loss, should_step):
            super().on_fit_batch_end(batch, outputs, loss, should_step)
            state["full"] = self.optimizer_step == 3

    monkeypatch.setattr(torch, "save", maybe_full)
    out = tmp_path / "run"
    args = run_args(tiny_corpus, out, "--number_of_epochs=2", "--ckpt_interval_steps=1")
    with monkeypatch.context() as patch, pytest.raises(DiskFullError, match="Disk full") as err:
        patch.setattr(pretrain, "BestRQBrain", FillsTheDisk)
        pretrain.main(args)
    assert str(out / "save") in str(err.value)
    assert not list((out / "save").glob(".tmp-*"))
    assert all(checkpoint_problem(c) is None for c in (out / "save").glob("CKPT+*"))
    state["full"] = False  # space freed
    brain = pretrain.main(args)
    assert brain.hparams.epoch_counter.current == 2
    full = pretrain.main(run_args(tiny_corpus, tmp_path / "uninterrupted", "--number_of_epochs=2"))
    assert brain.optimizer_step == full.optimizer_step
    for name, value in brain.modules.model.state_dict().items():
        assert torch.equal(value, full.modules.model.state_dict()[name]), name


# =================================================================== 5. exact resume
class KilledMidWindow(pretrain.BestRQBrain):
    """Dies when its 3rd accumulation window (batches 5 and 6) steps, before a checkpoint; a
    checkpoint every batch was due after batch 5, in the middle of that window."""

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        super().on_fit_batch_end(batch, outputs, loss, should_step)
        if self.optimizer_step == 3 and should_step:
            raise KeyboardInterrupt("simulated kill")


@pytest.mark.slow
def test_exact_resume_with_gradient_accumulation(tiny_corpus, tmp_path, monkeypatch):
    """Intra-epoch checkpoints fall on accumulation-window boundaries (the paper YAMLs accumulate
    2 batches): a run killed mid-window resumes bit-identical, with dropout."""
    common = ["--number_of_epochs=2", "--dropout=0.1", "--ckpt_interval_steps=1", "--grad_accumulation_factor=2"]
    full = pretrain.main(run_args(tiny_corpus, tmp_path / "full", *common))
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(pretrain, "BestRQBrain", KilledMidWindow)
        pretrain.main(run_args(tiny_corpus, tmp_path / "resumed", *common))
    resumed = pretrain.main(run_args(tiny_corpus, tmp_path / "resumed", *common))
    assert resumed.optimizer_step == full.optimizer_step > 4
    full_state = full.modules.model.state_dict()
    for name, value in resumed.modules.model.state_dict().items():
        assert torch.equal(value, full_state[name]), (name, (value - full_state[name]).abs().max())


# =================================================================== 2. reused folders
@pytest.mark.slow
@pytest.mark.parametrize("record", ["run_config.json", "legacy brq_model.json only"])
def test_another_configuration_is_refused_before_writing_anything(record, pretrain_run, tiny_corpus, tmp_path):
    source, _ = pretrain_run
    out = tmp_path / "run"
    shutil.copytree(source, out)
    if record != "run_config.json":
        (out / "run_config.json").unlink()
    before = folder_snapshot(out)
    with pytest.raises(SystemExit, match="another model configuration") as err:
        pretrain.main(run_args(tiny_corpus, out, "--number_of_epochs=3", "--codebook_dim=8"))
    message = str(err.value)
    assert "codebook_dim" in message and "--output_folder" in message and "delete" in message
    assert folder_snapshot(out) == before


def test_finetuning_and_probe_record_their_configuration(tiny_corpus, tmp_path):
    """The refusal for fine-tuning (head size) and an MP3S probe (probe size)."""
    from brq_att_alt.probes.training import run_configuration
    from brq_att_alt.training import write_run_config

    pretrained = tiny_pretrained_folder(tmp_path / "pt")
    recipe = load_script(FINETUNE / "train.py")
    out = tmp_path / "ft"
    argv = finetune_args(pretrained, tiny_corpus, out)
    hparams = load_hparams(argv)[3]
    out.mkdir()
    write_run_config(out, recipe.run_configuration(hparams)["config"])
    before = folder_snapshot(out)
    with pytest.raises(SystemExit, match=r"another model configuration \(run_config.json: head.hidden_size"):
        recipe.main([a if a != "--head_hidden=16" else "--head_hidden=24" for a in argv])
    assert folder_snapshot(out) == before

    slurp = load_script(MP3S / "SLURP_IC" / "train.py")
    yaml_file = str(MP3S / "SLURP_IC" / "BiLSTM" / "hparams" / "BiLSTM.yaml")
    probe_out = tmp_path / "probe"
    base = [yaml_file, f"--pretrained_path={pretrained}", f"--output_folder={probe_out}",
            f"--data_folder={tiny_corpus}"]
    hparams = load_hparams(base + ["--lstm_hidden=16"])[3]
    probe_out.mkdir()
    write_run_config(probe_out, run_configuration(hparams))
    before = folder_snapshot(probe_out)
    with pytest.raises(SystemExit, match="modules.probe"):
        slurp.main(base + ["--lstm_hidden=8"])
    assert folder_snapshot(probe_out) == before
    # another pre-trained checkpoint is another configuration too (the encoder is frozen)
    other = tmp_path / "pt" / "save" / "CKPT+second"
    shutil.copytree(tmp_path / "pt" / "save" / "CKPT+exported", other)
    with pytest.raises(SystemExit, match="pretrained_checkpoint"):
        slurp.main(base[:1] + [f"--pretrained_path={other}"] + base[2:] + ["--lstm_hidden=16"])


# =================================================================== 4. CKPT+ paths
@pytest.mark.slow
def test_ckpt_path_loads_exactly_that_checkpoint(pretrain_run, tmp_path, caplog):
    from brq_att_alt.pretrained import load_pretrained

    source, _ = pretrain_run
    out = tmp_path / "run"
    shutil.copytree(source, out)
    ckpts = sorted((out / "save").glob("CKPT+*"), key=lambda p: yaml.safe_load((p / "CKPT.yaml").read_text())["epoch"])
    older, newest = ckpts
    for path, expected in ((older, older), (newest, newest), (out, newest), (out / "save", newest)):
        encoder = load_pretrained(path)
        assert encoder.checkpoint == expected
        stored = torch.load(expected / "model.ckpt")
        assert all(torch.equal(v, stored[k]) for k, v in encoder.model.state_dict().items())
    assert load_pretrained(out, checkpoint=older.name).checkpoint == older
    with pytest.raises(FileNotFoundError, match="CKPT\\+nope"):
        load_pretrained(out / "save" / "CKPT+nope")
    with pytest.raises(FileNotFoundError, match="no_such_run"):
        load_pretrained(tmp_path / "no_such_run")
    # the newest truncated: reported by name, the older one is used; named, it is an error
    content = (newest / "model.ckpt").read_bytes()
    (newest / "model.ckpt").write_bytes(content[:500])
    with caplog.at_level(logging.WARNING):
        assert load_pretrained(out).checkpoint == older
    assert newest.name in caplog.text
    with pytest.raises(CheckpointError, match=re.escape(newest.name)):
        load_pretrained(newest)


# =================================================================== 6. small traps
def test_fractional_checkpoint_interval_is_accepted(tmp_path):
    hparams_file, run_opts, _, _ = load_hparams(
        [str(ROOT / "hparams" / "brq_tiny.yaml"), f"--output_folder={tmp_path}", "--ckpt_interval_minutes=0.5"])
    assert run_opts.ckpt_interval_minutes == 0.5 and "ckpt_interval_minutes" in run_opts.overridden_args
    with pytest.raises(SystemExit, match="number of minutes"):
        load_hparams([str(ROOT / "hparams" / "brq_tiny.yaml"), "--ckpt_interval_minutes=soon"])


def test_torchrun_without_gpus_names_the_gloo_backend(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "4096")  # more than any machine's GPU count
    with pytest.raises(SystemExit, match="--distributed_backend=gloo"):
        init_distributed({"distributed_backend": "nccl"})
