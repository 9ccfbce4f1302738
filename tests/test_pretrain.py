"""BEST-RQ pre-training recipe (issue 3): learning, resume, errors, every YAML, DDP."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from brq_att_alt.hparams import load_hparams
from brq_att_alt.mixers import MIXERS
from helpers import REPO_ROOT as ROOT, load_script, tiny_model_args

pretrain = load_script(ROOT / "train.py")

TINY_MODEL = tiny_model_args(codebook_size=256) + [
    "--mixer_options={hypermixing: {hypernet_size: 64}, summarymixing: {local_proj_hid_dim: [32], "
    "local_proj_out_dim: 32, summary_hid_dim: [32]}, mamba: {d_state: 4}}",
]


def run_args(corpus, out, *extra):
    return [
        str(ROOT / "hparams" / "brq_tiny.yaml"), f"--data_folder={corpus}", f"--output_folder={out}",
        "--train_splits=[train-clean-100]", "--max_batch_length=6", "--num_buckets=2",
        "--progressbar=False", "--ckpt_interval_minutes=0", *TINY_MODEL, *extra,
    ]


class RecordingBrain(pretrain.BestRQBrain):
    """Records the loss of every training batch."""

    def fit_batch(self, batch):
        loss = super().fit_batch(batch)
        self.losses = getattr(self, "losses", []) + [float(loss)]
        return loss


@pytest.mark.slow
@pytest.mark.parametrize("mixer", MIXERS)
def test_loss_goes_down_for_every_mixer(mixer, tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(pretrain, "BestRQBrain", RecordingBrain)
    brain = pretrain.main(
        run_args(tiny_corpus, tmp_path, f"--attention_type={mixer}", "--number_of_epochs=6", "--lr=0.003",
                 "--warmup_steps=5", "--dropout=0.0"),
    )
    losses = brain.losses
    assert len(losses) >= 12
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first - 0.3, f"{mixer}: loss {first:.2f} -> {last:.2f}"
    assert 0.0 <= brain.train_stats["acc"] <= 1.0
    ckpts = list((tmp_path / "save").glob("CKPT+*"))
    assert ckpts and (tmp_path / "save" / "brq_model.json").is_file()


class InterruptedBrain(pretrain.BestRQBrain):
    """Dies after its 4th optimizer step, before that step's checkpoint is written."""

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        super().on_fit_batch_end(batch, outputs, loss, should_step)
        if self.optimizer_step == 4:
            raise KeyboardInterrupt("simulated kill")


@pytest.mark.slow
def test_interrupted_run_resumes_exactly(tiny_corpus, tmp_path, monkeypatch):
    """With dropout 0.1 and layerdrop 0.2: the checkpoints hold the RNG states (issue 10)."""
    common = ["--attention_type=fastformer", "--number_of_epochs=2", "--dropout=0.1", "--layerdrop=0.2",
              "--ckpt_interval_steps=1"]
    full = pretrain.main(run_args(tiny_corpus, tmp_path / "full", *common))
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(pretrain, "BestRQBrain", InterruptedBrain)
        pretrain.main(run_args(tiny_corpus, tmp_path / "resumed", *common))
    monkeypatch.setattr(pretrain, "BestRQBrain", RecordingBrain)
    resumed = pretrain.main(run_args(tiny_corpus, tmp_path / "resumed", *common))
    assert resumed.optimizer_step == full.optimizer_step > 4
    # it restarted from the step-3 checkpoint (mid-epoch), not from scratch
    assert len(resumed.losses) == full.optimizer_step - 3
    assert resumed.hparams.noam_annealing.n_steps == full.hparams.noam_annealing.n_steps
    full_state = full.modules.model.state_dict()
    for name, value in resumed.modules.model.state_dict().items():
        assert torch.allclose(value, full_state[name], atol=1e-6), name
        assert torch.equal(value, full_state[name]), name  # bit-identical
    # quantizer buffers are those drawn from the seed, untouched by training
    fresh = load_hparams(run_args(tiny_corpus, tmp_path / "fresh"))[3]["model"]
    assert torch.equal(resumed.modules.model.quantizer.codebook, fresh.quantizer.codebook)
    assert torch.equal(resumed.modules.model.quantizer.P, fresh.quantizer.P)
    opt_full, opt_resumed = full.optimizer.state_dict(), resumed.optimizer.state_dict()
    assert opt_full["state"][0]["step"] == opt_resumed["state"][0]["step"]
    assert torch.equal(opt_full["state"][0]["exp_avg"], opt_resumed["state"][0]["exp_avg"])


def test_unknown_attention_type_names_valid_ones(tiny_corpus, tmp_path):
    with pytest.raises(ValueError) as err:
        pretrain.main(run_args(tiny_corpus, tmp_path, "--attention_type=linformer"))
    assert all(name in str(err.value) for name in MIXERS)


def test_unknown_override_is_a_clear_error(tiny_corpus, tmp_path):
    with pytest.raises(SystemExit, match="d_modle"):
        pretrain.main(run_args(tiny_corpus, tmp_path, "--d_modle=32"))


def test_wrong_data_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        pretrain.main(run_args(tmp_path / "no_such_LibriSpeech", tmp_path / "out", "--dataset=real"))


def test_synthetic_dataset_in_a_folder_of_other_data_is_a_clear_error(real_librispeech, tmp_path):
    with pytest.raises(FileExistsError, match="--dataset=real"):
        pretrain.main(run_args(real_librispeech, tmp_path / "out", "--dataset=synthetic"))


@pytest.fixture(scope="module")
def librispeech_960_layout(tiny_corpus, tmp_path_factory):
    """The tiny corpus with the three 960 h training splits, as the base YAMLs expect."""
    root = tmp_path_factory.mktemp("LibriSpeech")
    sources = {"train-clean-100": "train-clean-100", "train-clean-360": "dev-clean",
               "train-other-500": "test-clean", "dev-clean": "dev-clean"}
    for split, source in sources.items():
        (root / split).symlink_to(Path(tiny_corpus) / source)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("yaml", sorted(p.name for p in (ROOT / "hparams").glob("brq_*.yaml") if "tiny" not in p.name))
def test_every_yaml_starts_training(yaml, librispeech_960_layout, tmp_path):
    """Each of the 12 YAMLs, as written but with one layer, runs two optimizer steps on CPU."""
    brain = pretrain.main(
        [str(ROOT / "hparams" / yaml), f"--data_folder={librispeech_960_layout}", f"--output_folder={tmp_path}",
         "--num_layers=1", "--optimizer_step_limit=2", "--grad_accumulation_factor=1", "--max_batch_length=4",
         "--num_buckets=2", "--precision=fp32", "--progressbar=False", "--num_workers=0", "--ckpt_interval_minutes=0",
         "--valid_dataloader_options={batch_size: 2, num_workers: 0}", "--min_duration=0.5"]
    )
    assert brain.optimizer_step == 2


@pytest.mark.slow
def test_ddp_two_processes_gloo(tiny_corpus, tmp_path):
    """torchrun with 2 CPU processes (gloo) trains a few steps and writes one checkpoint."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           str(ROOT / "train.py"), *run_args(tiny_corpus, tmp_path, "--number_of_epochs=1", "--attention_type=pom"),
           "--distributed_backend=gloo", "--device=cpu"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list((tmp_path / "save").glob("CKPT+*"))) == 1
    log = (tmp_path / "train_log.txt").read_text()
    assert "valid acc" in log
