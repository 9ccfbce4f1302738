"""End-to-end CTC fine-tuning recipe (recipes/finetune_ctc) on the tiny synthetic corpus."""

import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch

from brq_att_alt.model import BestRQModel
from brq_att_alt.pretrained import load_pretrained, save_pretrained

REPO_ROOT = Path(__file__).resolve().parents[1]
RECIPE = REPO_ROOT / "recipes" / "finetune_ctc"
HPARAMS = RECIPE / "hparams" / "finetune_ctc.yaml"


def load_recipe():
    spec = importlib.util.spec_from_file_location("finetune_ctc_train", RECIPE / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module




def test_lm_path_handling(tmp_path):
    recipe = load_recipe()
    hp = {"lm_path": str(tmp_path / "missing.arpa"), "data_folder": str(tmp_path)}
    with pytest.raises(FileNotFoundError, match="missing.arpa"):
        recipe.build_lm_if_needed(hp)
    # real LibriSpeech (no labels.csv) without lm_path: greedy only
    assert recipe.build_lm_if_needed({"lm_path": "", "data_folder": str(tmp_path)}) == ""
    # synthetic corpus: an ARPA from the training transcripts
    (tmp_path / "labels.csv").write_text("ID\n")
    csv = tmp_path / "train.csv"
    csv.write_text("ID,duration,wav,spk_id,wrd\na,1,x,1,TURN ON THE LIGHTS\nb,1,x,1,TURN OFF THE FAN\n")
    hp = {"lm_path": "", "data_folder": str(tmp_path), "output_folder": str(tmp_path / "out"), "lm_order": 3,
          "train_csv": str(csv)}
    path = Path(recipe.build_lm_if_needed(hp))
    assert path.name == "train_3gram.arpa" and "TURN OFF" in path.read_text()


@pytest.mark.slow
def test_finetune_end_to_end_and_resume(tiny_corpus, tmp_path):
    torch.manual_seed(0)
    pretrained = save_pretrained(
        BestRQModel(mixer="summarymixing", d_model=32, num_layers=2, nhead=2, d_ffn=64, kernel_size=7,
                    codebook_size=16),
        tmp_path / "pretrain" / "save",
    )
    out = tmp_path / "ft"
    argv = [str(HPARAMS), "--pretrained_path", str(pretrained.parent), "--data_folder", str(tiny_corpus),
            "--output_folder", str(out), "--test_splits=[test-clean]", "--progressbar", "False",
            "--beam_size", "4", "--bootstrap_samples", "200", "--encoder_freeze_steps", "1",
            "--head_hidden", "32", "--max_batch_length", "12",
            "--number_of_epochs", "1"]
    recipe = load_recipe()
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
