"""End-to-end CTC fine-tuning recipe (recipes/finetune_ctc) on the tiny synthetic corpus."""

import json
import re
from pathlib import Path

import pytest
import torch

from brq_att_alt.asr import decoding_lm
from brq_att_alt.hparams import load_hparams
from brq_att_alt.model import BestRQModel
from brq_att_alt.pretrained import load_pretrained
from helpers import REPO_ROOT, TINY_MODEL, load_script, save_run

RECIPE = REPO_ROOT / "recipes" / "finetune_ctc"
HPARAMS = RECIPE / "hparams" / "finetune_ctc.yaml"


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
