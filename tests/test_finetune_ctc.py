"""CTC fine-tuning recipe (recipes/finetune_ctc): the tiny CPU configuration end to end on the
tiny synthetic corpus, and the paper's LibriSpeech configuration (its values, its head against
the authors' architecture built from SpeechBrain's classes, one epoch on the tiny corpus)."""

import json
import re
from pathlib import Path

import pytest
import torch

from brq_att_alt.asr import CTCHead, decoding_lm
from brq_att_alt.hparams import load_hparams
from brq_att_alt.model import BestRQModel
from brq_att_alt.pretrained import load_pretrained
from helpers import REPO_ROOT, TINY_MODEL, load_script, save_run

RECIPE = REPO_ROOT / "recipes" / "finetune_ctc"
HPARAMS = RECIPE / "hparams" / "finetune_ctc_tiny.yaml"
PAPER = RECIPE / "hparams" / "finetune_ctc_librispeech.yaml"


def test_lm_path_handling(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.arpa"):
        decoding_lm(str(tmp_path / "missing.arpa"), True, tmp_path / "train.csv", tmp_path, 3)
    # no lm_path and no LM to build (real LibriSpeech by default): greedy only
    assert decoding_lm("", False, tmp_path / "train.csv", tmp_path, 3) == ""
    # an ARPA from the training transcripts
    csv = tmp_path / "train.csv"
    csv.write_text("ID,duration,wav,spk_id,wrd\na,1,x,1,TURN ON THE LIGHTS\nb,1,x,1,TURN OFF THE FAN\n")
    path = Path(decoding_lm(None, True, csv, tmp_path / "out", 3))
    assert path == tmp_path / "out" / "lm" / "train_3gram.arpa" and "TURN OFF" in path.read_text()


def test_the_yaml_builds_an_lm_on_the_synthetic_corpus_only(tmp_path):
    """build_lm follows the recipe's `dataset` (on real data without lm_path: greedy only)."""
    pretrained = save_run(BestRQModel("mhsa", **TINY_MODEL), tmp_path / "pretrained" / "save").parent
    for dataset, build in (("synthetic", True), ("real", False)):
        hparams = load_hparams([str(HPARAMS), f"--dataset={dataset}", f"--output_folder={tmp_path / 'out'}",
                                f"--pretrained_path={pretrained}"])[3]
        assert hparams["build_lm"] is build


def test_ctc_head_last_hidden_layer_without_dropout():
    """The paper's head: dropout after every hidden layer but the last; the module indices (and
    so the state dict keys) do not depend on it."""
    with_drop = CTCHead(16, 29, hidden_size=8, num_layers=4, dropout=0.5)
    without = CTCHead(16, 29, hidden_size=8, num_layers=4, dropout=0.5, dropout_last_hidden=False)
    assert list(with_drop.state_dict()) == list(without.state_dict())
    drops = [type(m).__name__ for m in without.net if isinstance(m, (torch.nn.Dropout, torch.nn.Identity))]
    assert drops == ["Dropout", "Dropout", "Identity"]
    assert without.config["dropout_last_hidden"] is False and CTCHead(**without.config).config == without.config
    x = torch.randn(2, 5, 16)
    for head, zeros in ((without, False), (with_drop, True)):  # the last hidden layer's output, training
        torch.manual_seed(0)
        assert bool((head.train().net[:-1](x) == 0).any()) is zeros  # LeakyReLU alone gives no zeros


def test_paper_yaml_values_and_head_size(tmp_path):
    """finetune_ctc_librispeech.yaml holds the paper's settings; its head has the parameters of
    the authors' back_end_ffn + ctc_lin built from SpeechBrain's classes."""
    from speechbrain.nnet.containers import Sequential
    from speechbrain.nnet.linear import Linear
    from speechbrain.nnet.normalization import LayerNorm

    pretrained = save_run(BestRQModel("mhsa", **TINY_MODEL), tmp_path / "pretrained" / "save").parent
    h = load_hparams([str(PAPER), f"--pretrained_path={pretrained}", f"--output_folder={tmp_path / 'out'}",
                      f"--data_folder={tmp_path}"])[3]
    assert (h["dataset"], h["train_splits"], h["number_of_epochs"]) == ("real", ["train-clean-100"], 30)
    assert (h["lr_head"], h["lr_encoder"], h["weight_decay"]) == (3e-4, 5e-5, 1e-3)
    opt = h["head_opt_class"]([torch.nn.Parameter(torch.zeros(1))])
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["weight_decay"] == 1e-3
    assert (h["lr_annealing_head"].annealing_factor, h["lr_annealing_encoder"].annealing_factor) == (0.5, 0.7)
    assert h["annealing_metric"] == "loss"
    assert (h["dynamic_batching"], h["batch_size"], h["shuffle"]) == (False, 6, False)
    assert (h["lm_alpha"], h["lm_beta"], h["beam_size"]) == (0.5, 1.0, 100)
    assert h["beam_search_options"]["prune_history"] is False
    aug = h["wav_augment"]
    assert aug.concat_original and aug.augment_prob == 1.0 and len(aug.augmentations) == 3
    assert aug.min_augmentations == aug.max_augmentations == 3
    assert (h["drop_chunk"].drop_count_high, h["drop_chunk"].drop_length_low) == (5, 1000)

    d, ours = TINY_MODEL["d_model"], h["head"]
    ref = Sequential(input_shape=[None, None, d])
    for i in (1, 2, 3):
        ref.append(Linear, n_neurons=1280, bias=True, layer_name=f"linear{i}")
        ref.append(LayerNorm, layer_name=f"bn{i}")
        ref.append(torch.nn.LeakyReLU(), layer_name=f"activation{i}")
        if i < 3:
            ref.append(torch.nn.Dropout(0.15), layer_name=f"drop{i}")
    ctc_lin = Linear(input_size=1280, n_neurons=29)
    count = lambda *ms: sum(p.numel() for m in ms for p in m.parameters())  # noqa: E731
    assert count(ours) == count(ref, ctc_lin)
    assert ours.config == dict(input_size=d, vocab_size=29, hidden_size=1280, num_layers=4, dropout=0.15,
                               dropout_last_hidden=False)


@pytest.mark.slow
def test_paper_yaml_runs_on_the_tiny_corpus(tiny_corpus, tmp_path):
    """The paper's configuration end to end (one epoch; a small head for speed): augmentation
    with the originals kept, batches of 6, LM decoding with alpha 0.5 / beta 1.0."""
    torch.manual_seed(0)
    pretrained = save_run(BestRQModel("mhsa", **TINY_MODEL), tmp_path / "pretrain" / "save")
    out = tmp_path / "ft"
    recipe = load_script(RECIPE / "train.py")
    brain = recipe.main([str(PAPER), "--pretrained_path", str(pretrained.parent), "--dataset=synthetic",
                         "--data_folder", str(tiny_corpus), "--output_folder", str(out), "--test_splits=[test-clean]",
                         "--progressbar=False", "--number_of_epochs=1", "--num_workers=0", "--head_hidden=32",
                         "--beam_size=4", "--bootstrap_samples=50"])
    assert brain.optimizer_step == 2  # 8 training utterances in batches of 6
    log = (out / "train_log.txt").read_text()
    assert re.search(r"^epoch: 1, steps: 2, lr_head: 3.00e-04, lr_encoder: 5.00e-05", log, flags=re.M), log
    results = json.loads((out / "wer_test-clean.json").read_text())
    assert results["greedy"]["utterances"] == 8
    head = json.loads((out / "save" / "ctc_head.json").read_text())
    assert (head["num_layers"], head["dropout_last_hidden"]) == (4, False)
    if "lm" in results:  # kenlm installed
        assert (results["lm"]["alpha"], results["lm"]["beta"], results["lm"]["beam_size"]) == (0.5, 1.0, 4)


@pytest.mark.slow
def test_finetune_end_to_end_and_resume(tiny_corpus, tmp_path):
    torch.manual_seed(0)
    pretrained = save_run(BestRQModel(mixer="summarymixing", **TINY_MODEL), tmp_path / "pretrain" / "save")
    out = tmp_path / "ft"
    argv = [str(HPARAMS), "--pretrained_path", str(pretrained.parent), "--data_folder", str(tiny_corpus),
            "--output_folder", str(out), "--test_splits=[test-clean]", "--progressbar", "False",
            "--beam_size", "4", "--bootstrap_samples", "200", "--encoder_freeze_steps", "1",
            "--head_hidden", "32", "--max_batch_length", "12",
            "--number_of_epochs", "1"]
    recipe = load_script(RECIPE / "train.py")
    recipe.main(argv)

    # WER files: greedy and LM decoding, each with a 95% CI
    text = (out / "wer_test-clean.txt").read_text()
    assert re.search(r"test-clean greedy: WER [\d.]+% \(95% CI \[[\d.]+, [\d.]+\]\)", text), text[:500]
    assert re.search(r"test-clean +lm: WER [\d.]+% \(95% CI", text), text[:500]
    results = json.loads((out / "wer_test-clean.json").read_text())
    for name in ("greedy", "lm"):
        r = results[name]
        assert r["utterances"] == 8 and r["ref_words"] > 8
        assert r["ci_low"] <= r["wer"] <= r["ci_high"]
        hyps = (out / f"hyp_test-clean_{name}.txt").read_text().splitlines()
        assert len(hyps) == 8
    assert results["lm"]["lm_path"].endswith("train_3gram.arpa") and Path(results["lm"]["lm_path"]).is_file()

    # the save folder reads as a pre-trained encoder and as an ASR model
    save = out / "save"
    for name in ("brq_model.json", "ctc_head.json", "tokenizer.json"):
        assert (save / name).is_file()
    ckpts = list(save.glob("CKPT+*"))
    assert len(ckpts) == 1 and (ckpts[0] / "model.ckpt").is_file() and (ckpts[0] / "head.ckpt").is_file()
    encoder = load_pretrained(out)
    assert encoder.model.config["mixer"] == "summarymixing"
    from brq_att_alt.inference import BestRQTranscriber

    asr = BestRQTranscriber.from_folder(out)
    wav = sorted(Path(tiny_corpus, "test-clean").rglob("*.flac"))[0]
    assert isinstance(asr.transcribe_file(wav), str)
    # fine-tuning changed the encoder
    before = torch.load(pretrained / "CKPT+exported" / "model.ckpt")
    after = encoder.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))

    # resume: a second run with more epochs continues from the checkpoint (epoch 1 is not redone)
    recipe.main(argv[:-1] + ["2"])
    log = (out / "train_log.txt").read_text()
    epochs = re.findall(r"^epoch: (\d+), steps: (\d+)", log, flags=re.M)
    assert [e for e, _ in epochs] == ["1", "2"], log
    assert int(epochs[1][1]) == 2 * int(epochs[0][1])  # the step counter was restored too
    assert (out / "wer_test-clean.txt").is_file()
