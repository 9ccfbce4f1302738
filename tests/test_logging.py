"""Watching training: step-level lines in the train log, the TensorBoard switch in every recipe YAML."""

import re
import sys
from pathlib import Path

import pytest

from brq_att_alt.hparams import load_hparams
from brq_att_alt.train_logger import RecipeTrainLogger
from helpers import MP3S, REPO_ROOT, load_script, tiny_model_args

RECIPE_YAMLS = sorted((REPO_ROOT / "hparams").glob("*.yaml")) + sorted((REPO_ROOT / "recipes").rglob("*.yaml"))
STEP_LINE = re.compile(r"^step: (\d+), epoch: (\d+), (lr[^:\n]*): ([^ ,\n]+)[^\n]* - train loss: ([^ ,\n]+)", re.M)


def tensorboard_scalars(folder: Path) -> dict:
    """{tag: [(step, value), ...]} of the event files in ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_every_recipe_yaml_has_the_logging_keys():
    assert len(RECIPE_YAMLS) >= 24  # 13 pre-training, 10 MP3S, fine-tuning
    for path in RECIPE_YAMLS:
        text = path.read_text()
        assert re.search(r"^log_interval_steps: \d+", text, re.M), path
        assert re.search(r"^use_tensorboard: False", text, re.M), path  # off by default
        assert "train_logger: !new:brq_att_alt.train_logger.RecipeTrainLogger" in text, path
        assert "use_tensorboard: !ref <use_tensorboard>" in text, path


def test_tensorboard_switched_on_without_the_package_stops_at_start(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"tensorboard package.*pip install -e \"\.\[tensorboard\]\""):
        load_hparams([str(REPO_ROOT / "hparams" / "brq_tiny.yaml"), f"--output_folder={tmp_path}",
                      "--use_tensorboard=True"])
    assert not (tmp_path / "tensorboard").exists()
    # off (the default): no tensorboard needed
    hparams = load_hparams([str(REPO_ROOT / "hparams" / "brq_tiny.yaml"), f"--output_folder={tmp_path}"])[3]
    assert hparams["train_logger"].tensorboard is None


def test_logger_writes_numbers_to_tensorboard_and_everything_to_the_file(tmp_path):
    pytest.importorskip("tensorboard")
    log = RecipeTrainLogger(tmp_path / "train_log.txt", tmp_path / "tb", use_tensorboard=True)
    log.log_stats({"step": 5, "epoch": 1, "lr": 0.001}, train_stats={"loss": 2.5, "acc": 0.25})
    log.log_stats({"epoch": 1, "lr": 0.001, "layer_weights": [0.2, 0.8]}, train_stats={"loss": 2.0},
                  valid_stats={"loss": 1.5, "WER": 80.0})
    log.log_stats({"set": "test-clean", "Epoch loaded": 1}, test_stats={"WER_greedy": 70.0, "CI_greedy": "[60, 80]"})
    text = (tmp_path / "train_log.txt").read_text().splitlines()
    assert text[0].startswith("step: 5, epoch: 1, lr: 1.00e-03 - train loss: 2.50")
    assert "layer_weights: [0.2, 0.8]" in text[1] and "test CI_greedy: [60, 80]" in text[2]
    scalars = tensorboard_scalars(tmp_path / "tb")
    assert scalars["loss/train_step"] == [(5, 2.5)] and scalars["lr/train_step"][0][0] == 5
    assert [v for _, v in scalars["loss/valid"]] == [1.5] and "layer_weights/1" in scalars
    assert [v for _, v in scalars["WER_greedy/test"]] == [70.0]
    assert not any("CI_greedy" in tag or tag == "set" for tag in scalars)  # strings left out


@pytest.mark.slow
def test_pretraining_logs_steps_and_tensorboard(tiny_corpus, tmp_path):
    pytest.importorskip("tensorboard")
    pretrain = load_script(REPO_ROOT / "train.py")
    out = tmp_path / "run"
    brain = pretrain.main([str(REPO_ROOT / "hparams" / "brq_tiny.yaml"), f"--data_folder={tiny_corpus}",
                           f"--output_folder={out}", "--number_of_epochs=2", "--max_batch_length=6",
                           "--num_buckets=2", "--progressbar=False", "--ckpt_interval_minutes=0",
                           "--log_interval_steps=2", "--use_tensorboard=True", *tiny_model_args(codebook_size=256)])
    log = (out / "train_log.txt").read_text()
    steps = STEP_LINE.findall(log)
    assert [int(s[0]) for s in steps] == list(range(2, brain.optimizer_step + 1, 2))
    assert {s[2] for s in steps} == {"lr"} and all(float(s[4]) > 0 for s in steps)
    assert re.search(r"^step: 2, epoch: 1, lr: [^ ]+ - train loss: [\d.]+, train acc: [\d.e+-]+$", log, re.M), log
    assert len(re.findall(r"^epoch: \d+, steps: \d+", log, re.M)) == 2  # the epoch lines are still there
    # Noam warm-up: the logged learning rate rises
    lrs = [float(s[3]) for s in steps]
    assert lrs == sorted(lrs) and lrs[0] < lrs[-1]
    scalars = tensorboard_scalars(out / "tensorboard")
    assert [s for s, _ in scalars["loss/train_step"]] == [int(s[0]) for s in steps]
    assert {"acc/train_step", "lr/train_step", "loss/train", "loss/valid", "acc/valid"} <= set(scalars)
    assert len(scalars["loss/valid"]) == 2


@pytest.mark.slow
def test_fine_tuning_and_probes_log_loss_and_learning_rates(tiny_corpus, tiny_pretrained, tmp_path, mp3s_recipes):
    """Step lines in the train log and, switched on, TensorBoard event files with the same steps."""
    pytest.importorskip("tensorboard")
    finetune = load_script(REPO_ROOT / "recipes" / "finetune_ctc" / "train.py")
    ft_yaml = next((REPO_ROOT / "recipes" / "finetune_ctc" / "hparams").glob("finetune_ctc*.yaml"))
    out = tmp_path / "ft"
    finetune.main([str(ft_yaml), f"--pretrained_path={tiny_pretrained}", f"--data_folder={tiny_corpus}",
                   f"--output_folder={out}", "--test_splits=[test-clean]", "--progressbar=False", "--build_lm=False",
                   "--head_hidden=32", "--max_batch_length=12", "--number_of_epochs=1", "--log_interval_steps=1",
                   "--use_tensorboard=True"])
    steps = STEP_LINE.findall((out / "train_log.txt").read_text())
    assert steps and [int(s[0]) for s in steps] == list(range(1, len(steps) + 1))
    scalars = tensorboard_scalars(out / "tensorboard")
    assert [s for s, _ in scalars["loss/train_step"]] == [int(s[0]) for s in steps]
    assert {"lr_head/train_step", "lr_encoder/train_step", "loss/train", "loss/valid"} <= set(scalars), set(scalars)
    assert {s[2] for s in steps} == {"lr_head"}  # two optimizers: one lr each
    assert all(re.search(r"lr_encoder: ", line) for line in (out / "train_log.txt").read_text().splitlines()
               if line.startswith("step:"))

    probe_out = tmp_path / "probe"
    mp3s_recipes("SLURP_IC", "linear", probe_out, tiny_pretrained, tiny_corpus,
                 "--synthetic_splits={train: [train-clean-100], valid: [dev-clean], test: [test-clean]}",
                 "--log_interval_steps=1", "--use_tensorboard=True")
    steps = STEP_LINE.findall((probe_out / "train_log.txt").read_text())
    assert steps and {s[2] for s in steps} == {"lr_probe"}  # MP3S: probe and layer-weight optimizers
    scalars = tensorboard_scalars(probe_out / "tensorboard")
    assert [s for s, _ in scalars["loss/train_step"]] == [int(s[0]) for s in steps]
    assert {"lr_probe/train_step", "lr_weights/train_step", "loss/valid"} <= set(scalars), set(scalars)
    assert all(re.search(r"lr_weights: ", line) for line in (probe_out / "train_log.txt").read_text().splitlines()
               if line.startswith("step:"))
