"""MP3S recipes end to end on the tiny synthetic corpus and a tiny random checkpoint:
each probe trains a few steps and writes its metric; the frozen encoder is untouched;
the driver writes the results table."""

import csv
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from brq_att_alt.ctc_decoding import missing_lm_modules
from helpers import MP3S, REPO_ROOT, load_script

pytestmark = pytest.mark.slow

run_all = load_script(MP3S / "run_all.py")
SPLITS = "{train: [train-clean-100], valid: [dev-clean], test: [test-clean]}"
# on the tiny corpus (4 speakers, 2 utterances per speaker and split) on top of run_all.py's --tiny table
TINY_CORPUS = {
    ("LibriSpeech_ASR", "BiLSTM"): {"test_splits": "[test-clean]", "lm_order": 2},
    ("LibriSpeech_ASR", "ContextNet"): {"test_splits": "[test-clean]", "build_lm": False},
    # the linear probe on MP3S's BPE units (--tiny uses characters; the BiLSTM case tests those)
    ("CommonVoice_ASR", "linear"): {"synthetic_splits": SPLITS, "language": "eu", "token_type": "bpe"},
    ("CommonVoice_ASR", "BiLSTM"): {"synthetic_splits": SPLITS},
    ("VoxCeleb1_SV", "Xvector"): {"synthetic_options": "{num_test_speakers: 2, train_splits: [train-clean-100], "
                                                       "valid_splits: [dev-clean], test_splits: [test-clean, dev-clean]}"},
    ("VoxCeleb1_SV", "ECAPA"): {"synthetic_options": "{num_test_speakers: 2, train_splits: [train-clean-100], "
                                                     "valid_splits: [dev-clean], test_splits: [test-clean]}"},
    ("SLURP_IC", "linear"): {"synthetic_splits": SPLITS},
    ("SLURP_IC", "BiLSTM"): {"synthetic_splits": SPLITS},
    ("IEMOCAP_ER", "linear"): {"num_speakers": 4, "folds": "[1, 2]"},
    ("IEMOCAP_ER", "ECAPA"): {"num_speakers": 4, "folds": "[4]"},
}


def tiny_overrides(task, probe):
    """run_all.py's --tiny settings of the recipe with one epoch and batches of 4, less its data
    subsets (the tiny corpus is smaller), then the tiny corpus' splits and folds."""
    tiny = {**run_all.TINY_COMMON, **run_all.TINY[(task, probe)], "number_of_epochs": 1, "batch_size": 4}
    tiny = {k: v for k, v in tiny.items() if not k.endswith("_subset")}
    return [f"--{k}={v}" for k, v in {**tiny, **TINY_CORPUS[(task, probe)]}.items()]


EXPECTED_METRICS = {
    # +LM needs kenlm and pygtrie (the lm extra); without them the recipe reports greedy WER only
    ("LibriSpeech_ASR", "BiLSTM"): {"WER test-clean"} | (set() if missing_lm_modules() else {"WER test-clean +LM"}),
    ("LibriSpeech_ASR", "ContextNet"): {"WER test-clean"},
    # greedy and MP3S's CTC beam search without LM
    ("CommonVoice_ASR", "linear"): {"WER test", "WER test beam"},
    ("CommonVoice_ASR", "BiLSTM"): {"WER test", "WER test beam"},
    ("VoxCeleb1_SV", "Xvector"): {"EER", "minDCF"},
    ("VoxCeleb1_SV", "ECAPA"): {"EER", "minDCF"},
    ("SLURP_IC", "linear"): {"accuracy"},
    ("SLURP_IC", "BiLSTM"): {"accuracy"},
    ("IEMOCAP_ER", "linear"): {"accuracy"},
    ("IEMOCAP_ER", "ECAPA"): {"accuracy"},
}


def test_every_recipe_is_tested_and_has_tiny_settings():
    recipes = {(r.task, r.probe) for r in run_all.find_recipes()}
    assert len(recipes) == 10 and recipes == set(TINY_CORPUS) == set(run_all.TINY) == set(EXPECTED_METRICS)


@pytest.mark.parametrize("task, probe", list(TINY_CORPUS))
def test_probe_trains_and_writes_its_metric(task, probe, tmp_path, tiny_corpus, tiny_pretrained, mp3s_recipes):
    out = tmp_path / "run"
    mp3s_recipes(task, probe, out, tiny_pretrained, tiny_corpus, *tiny_overrides(task, probe))
    result = json.loads((out / "mp3s_metrics.json").read_text())
    assert result["task"].startswith(task) and result["probe"] == probe
    assert result["mixer"] == "mhsa" and result["dataset"] == "synthetic"
    assert set(result["metrics"]) == EXPECTED_METRICS[(task, probe)]
    for name, m in result["metrics"].items():
        assert 0.0 <= m["value"] <= (100.0 if "WER" not in name else 1000.0), (name, m)
        assert m["direction"] == ("lower" if name.startswith(("WER", "EER", "minDCF")) else "higher")
    weights = result["layer_weights"]
    assert len(weights) == 3 and sum(weights) == pytest.approx(1.0, abs=1e-3)
    if task == "IEMOCAP_ER":
        folds = [str(f) for f in json.loads(TINY_CORPUS[(task, probe)]["folds"])]
        assert sorted(result["fold_accuracy"]) == folds
        accuracy, per_fold = result["metrics"]["accuracy"], list(result["fold_accuracy"].values())
        assert accuracy["value"] == pytest.approx(sum(per_fold) / len(folds))
        assert accuracy["std"] == pytest.approx(statistics.stdev(per_fold) if len(per_fold) > 1 else 0.0)
        assert (accuracy["min"], accuracy["max"], accuracy["folds"]) == (min(per_fold), max(per_fold), len(folds))
        for k in folds:  # each fold trained and tested apart: test speaker k
            with open(out / "manifests" / f"fold_{k}" / "test.csv") as fh:
                assert {r["speaker"] for r in csv.DictReader(fh)} == {k}
            assert (out / f"fold_{k}" / "train_log.txt").is_file()
    if task == "VoxCeleb1_SV":
        assert 0.0 <= result["metrics"]["minDCF"]["value"] <= 1.0 and result["metrics"]["minDCF"]["p_target"] == 0.01
        assert result["num_trials"] == len((out / "manifests" / "trials.txt").read_text().splitlines())
    if task == "CommonVoice_ASR":
        assert result["task"] == f"{task} ({'eu' if probe == 'linear' else 'cy'})"
        tokenizer = json.loads((out / "save" / "tokenizer.json").read_text())
        if probe == "linear":  # MP3S: 100 SentencePiece BPE units trained on the training transcripts, <unk> the blank
            assert len(result["vocab"]) == 100 and result["vocab"][0] == "<unk>"
            assert tokenizer["type"] == "sentencepiece"
        else:  # --tiny: the characters of the training transcripts, after the blank and the space
            with open(out / "manifests" / "train.csv") as fh:
                chars = {c for row in csv.DictReader(fh) for c in row["wrd"]} - {" "}
            assert tokenizer["type"] == "char" and result["vocab"][:2] == ["<blank>", " "]
            assert sorted(result["vocab"][2:]) == sorted(chars)
        report = json.loads((out / "wer_test.json").read_text())
        assert report["beam"]["beam_size"] == run_all.TINY[(task, probe)]["beam_size"] and report["beam"]["utterances"] == report["greedy"]["utterances"]
    if task == "LibriSpeech_ASR":
        assert len(result["vocab"]) == 29  # blank, space, apostrophe, A-Z


def test_recipe_keeps_the_encoder_frozen_and_trains_the_layer_weights(tmp_path, tiny_corpus, tiny_pretrained,
                                                                       mp3s_recipes):
    stored = torch.load(next(Path(tiny_pretrained).glob("CKPT+*")) / "model.ckpt")
    brain = mp3s_recipes("SLURP_IC", "BiLSTM", tmp_path / "run", tiny_pretrained, tiny_corpus,
                         f"--synthetic_splits={SPLITS}", "--lstm_hidden=16", "--number_of_epochs=2", "--lr=0.05")
    encoder = brain.modules.encoder
    assert not encoder.training and all(not p.requires_grad for p in encoder.parameters())
    after = encoder.model.state_dict()
    for key, value in stored.items():
        assert torch.equal(value, after[key]), f"frozen encoder weight {key} changed during probe training"
    # MP3S's two optimisers: the layer weights in one, the probe in the other, the encoder in neither
    params = {name: {id(p) for group in opt.param_groups for p in group["params"]}
              for name, opt in brain.optimizers_dict.items()}
    assert set(params) == {"probe_optimizer", "weights_optimizer"}
    optimised = params["probe_optimizer"] | params["weights_optimizer"]
    assert not optimised & {id(p) for p in encoder.parameters()}
    weights = brain.modules.weighted_sum.weights  # (SpeechBrain sets .grad to None after each step)
    assert params["weights_optimizer"] == {id(weights)}
    assert params["probe_optimizer"] == {id(p) for p in brain.modules.probe.parameters()}
    # lr_weights 0.01, or after the NewBob step (factor 0.9) of epoch 1's validation
    assert round(brain.weights_optimizer.param_groups[0]["lr"], 6) in (0.01, 0.009)
    assert weights.detach().abs().max() > 1e-3  # gradients moved them away from uniform (zeros)


def _logged_epochs(log: str):
    """FileTrainLogger lines of a probe run -> [{"epoch": 1, "lr_probe": ..., "valid loss": ...}, ...]."""
    epochs = []
    for line in log.splitlines():
        if line.startswith("epoch: "):
            line = re.sub(r"layer_weights: \[[^]]*\]", "", line)
            epochs.append({k.strip(): float(v) for k, v in re.findall(r"([A-Za-z_ ]+): ([-+.\deE]+)", line)})
    return epochs


def test_newbob_anneals_both_learning_rates_as_mp3s(tmp_path, tiny_corpus, tiny_pretrained, mp3s_recipes):
    """The probe's and the layer weights' learning rates follow NewBob (threshold 0.25 %, factors
    0.8 / 0.9) on the validation figure, each epoch, by the reference formula."""
    brain = mp3s_recipes("SLURP_IC", "linear", tmp_path / "run", tiny_pretrained, tiny_corpus,
                         f"--synthetic_splits={SPLITS}", "--number_of_epochs=4", "--annealing_metric=loss")
    epochs = _logged_epochs((tmp_path / "run" / "train_log.txt").read_text())
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4]
    seen = brain.hparams.lr_annealing_probe.metric_values  # exactly what NewBob was given
    assert seen == pytest.approx([e["valid loss"] for e in epochs], rel=1e-2)
    assert brain.hparams.lr_annealing_weights.metric_values == seen
    for part, lr, factor in (("probe", 2e-4, 0.8), ("weights", 0.01, 0.9)):
        expected = [lr, lr]  # epoch 1's validation has nothing to compare with
        for prev, cur in zip(seen[:-2], seen[1:-1]):  # epoch e's rate: validations e-2 and e-1
            expected.append(expected[-1] * (factor if (prev - cur) / prev < 0.0025 else 1.0))
        assert [e[f"lr_{part}"] for e in epochs] == pytest.approx(expected, rel=1e-2)
        final = getattr(brain, f"{part}_optimizer").param_groups[0]["lr"]
        assert final == pytest.approx(expected[-1] * (factor if (seen[-2] - seen[-1]) / seen[-2] < 0.0025 else 1.0))


def test_probe_resumes_its_two_optimisers_and_schedules(tmp_path, tiny_corpus, tiny_pretrained, mp3s_recipes):
    """A probe run stopped after epoch 1 and restarted to 2 epochs ends where an uninterrupted
    2-epoch run ends: both optimisers' states and both NewBob schedules come back."""
    args = (f"--synthetic_splits={SPLITS}", "--annealing_metric=loss")
    whole = mp3s_recipes("SLURP_IC", "linear", tmp_path / "whole", tiny_pretrained, tiny_corpus, *args,
                         "--number_of_epochs=2")
    mp3s_recipes("SLURP_IC", "linear", tmp_path / "split", tiny_pretrained, tiny_corpus, *args, "--number_of_epochs=1")
    resumed = mp3s_recipes("SLURP_IC", "linear", tmp_path / "split", tiny_pretrained, tiny_corpus, *args,
                           "--number_of_epochs=2")
    assert [e["epoch"] for e in _logged_epochs((tmp_path / "split" / "train_log.txt").read_text())] == [1, 2]
    assert len(resumed.hparams.lr_annealing_probe.metric_values) == 2  # epoch 1's figure came back
    for part in ("probe", "weights"):
        assert getattr(resumed.hparams, f"lr_annealing_{part}").metric_values == pytest.approx(
            getattr(whole.hparams, f"lr_annealing_{part}").metric_values)
        assert getattr(resumed, f"{part}_optimizer").param_groups[0]["lr"] == pytest.approx(
            getattr(whole, f"{part}_optimizer").param_groups[0]["lr"])
    for a, b in zip(whole.modules.probe.parameters(), resumed.modules.probe.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(whole.modules.weighted_sum.weights, resumed.modules.weighted_sum.weights, atol=1e-6)


def test_voxceleb_probe_lr_falls_linearly_and_layer_weights_lr_stays(tmp_path, tiny_corpus, tiny_pretrained,
                                                                     mp3s_recipes):
    """MP3S VoxCeleb1: probe Adam 1e-3 -> 1e-4 linearly over the epochs with weight decay 2e-6; the
    layer weights at 0.01 throughout; training on crops (one entry per whole 3 s of each utterance)."""
    # the YAML's own learning rate and 3 s crops (the --tiny table raises the rate and uses whole utterances)
    overrides = [o for o in tiny_overrides("VoxCeleb1_SV", "Xvector")
                 if not o.startswith(("--number_of_epochs", "--lr=", "--crop_seconds=", "--cache_hidden="))]
    brain = mp3s_recipes("VoxCeleb1_SV", "Xvector", tmp_path / "run", tiny_pretrained, tiny_corpus, *overrides,
                         "--number_of_epochs=3", "--cache_hidden=False")
    epochs = _logged_epochs((tmp_path / "run" / "train_log.txt").read_text())
    assert [e["lr_probe"] for e in epochs] == pytest.approx([1e-3, 5.5e-4, 1e-4], rel=1e-2)
    assert [e["lr_weights"] for e in epochs] == pytest.approx([0.01] * 3)
    assert brain.probe_optimizer.param_groups[0]["weight_decay"] == pytest.approx(2e-6)
    assert brain.weights_optimizer.param_groups[0]["weight_decay"] == 0
    with open(tmp_path / "run" / "manifests" / "train.csv") as fh:
        utterances = list(csv.DictReader(fh))
    with open(tmp_path / "run" / "manifests" / "train_crops.csv") as fh:
        crops = list(csv.DictReader(fh))
    assert len(crops) == sum(max(1, int(float(u["duration"]) // 3.0)) for u in utterances)


def test_cache_hidden_gives_the_same_features(tmp_path, tiny_corpus, tiny_pretrained, mp3s_recipes):
    """Epochs from the hidden-state cache see the encoder's own (padding-invariant) output."""
    brain = mp3s_recipes("SLURP_IC", "linear", tmp_path / "run", tiny_pretrained, tiny_corpus,
                         f"--synthetic_splits={SPLITS}", "--cache_hidden=True")
    from speechbrain.dataio.batch import PaddedBatch

    from brq_att_alt.data.audio import read_audio
    with open(tmp_path / "run" / "manifests" / "test.csv") as fh:
        items = [{"id": r["ID"], "sig": read_audio(r["wav"])} for r in csv.DictReader(fh)][:3]
    batch = PaddedBatch(items)
    with torch.no_grad():
        cached, cached_lens = brain.encode(batch)  # test utterances are in the cache after evaluate
        assert all(item["id"] in brain._cache for item in items)
        brain.hparams.cache_hidden = False
        fresh, fresh_lens = brain.encode(batch)
    assert torch.allclose(cached_lens, fresh_lens)
    for b in range(3):
        n = int(round(fresh_lens[b].item() * fresh.shape[1]))
        assert torch.allclose(cached[b, :n], fresh[b, :n], atol=1e-4)


def test_driver_runs_a_recipe_and_writes_the_table(tmp_path, tiny_corpus, tiny_pretrained):
    cmd = [sys.executable, str(MP3S / "run_all.py"), "--pretrained", str(tiny_pretrained), "--tiny",
           "--tasks", "SLURP_IC", "--probes", "linear", "--output", str(tmp_path / "mp3s"),
           "--synthetic_folder", str(tiny_corpus), "--set", f"synthetic_splits={SPLITS}",
           "--set", "number_of_epochs=1"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(tmp_path / "mp3s" / "results.csv") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 1
    row = table[0]
    assert (row["task"], row["probe"], row["metric"], row["direction"]) == (
        "Intent classification SLURP", "linear", "accuracy", "higher")
    metrics = json.loads((tmp_path / "mp3s" / "mhsa" / "SLURP_IC" / "linear" / "mp3s_metrics.json").read_text())
    assert float(row["mhsa"]) == pytest.approx(metrics["metrics"]["accuracy"]["value"], abs=0.01)
    md = (tmp_path / "mp3s" / "results.md").read_text().splitlines()
    assert md[0] == "| Task | Probe | Metric | mhsa |"
    assert md[2].startswith("| Intent classification SLURP | linear | accuracy (%) ↑ |")
