"""Issue 10: no run silently loses work (bad audio, kills, full disks, reused folders)."""

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("brq_pretrain_ft", ROOT / "train.py")
pretrain = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pretrain)

TINY_MODEL = ["--d_model=32", "--num_layers=2", "--nhead=4", "--d_ffn=64", "--kernel_size=7", "--codebook_size=256"]


def run_args(corpus, out, *extra):
    return [
        str(ROOT / "hparams" / "brq_tiny.yaml"), f"--data_folder={corpus}", f"--output_folder={out}",
        "--train_splits=[train-clean-100]", "--max_batch_length=6", "--num_buckets=2",
        "--progressbar=False", "--ckpt_interval_minutes=0", *TINY_MODEL, *extra,
    ]


class KilledBrain(pretrain.BestRQBrain):
    """Dies after its 4th optimizer step, before that step's checkpoint is written."""

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        super().on_fit_batch_end(batch, outputs, loss, should_step)
        if self.optimizer_step == 4:
            raise KeyboardInterrupt("simulated kill")


@pytest.mark.slow
def test_exact_resume_with_dropout(tiny_corpus, tmp_path):
    common = ["--attention_type=fastformer", "--number_of_epochs=2", "--dropout=0.1", "--layerdrop=0.2",
              "--ckpt_interval_steps=1"]
    full = pretrain.main(run_args(tiny_corpus, tmp_path / "full", *common))
    with pytest.raises(KeyboardInterrupt):
        pretrain.main(run_args(tiny_corpus, tmp_path / "resumed", *common), brain_class=KilledBrain)
    resumed = pretrain.main(run_args(tiny_corpus, tmp_path / "resumed", *common))
    assert resumed.optimizer_step == full.optimizer_step > 4
    full_state = full.modules.model.state_dict()
    for name, value in resumed.modules.model.state_dict().items():
        assert torch.equal(value, full_state[name]), (name, (value - full_state[name]).abs().max())
