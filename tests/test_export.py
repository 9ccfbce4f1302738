"""Exported model folders (``python -m brq_att_alt.export``): SpeechBrain's own interfaces load
them offline and give what the project's path gives; the folder is Hub-ready; the run is safe."""

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
import yaml

from brq_att_alt.ctc_decoding import greedy_decode
from brq_att_alt.data.audio import read_audio
from brq_att_alt.export import ExportError, export, main as export_main
from brq_att_alt.inference import BestRQTranscriber
from brq_att_alt.interfaces import greedy_ctc_ids, mark_padding_blank, valid_frames
from brq_att_alt.model import BestRQModel
from brq_att_alt.pretrained import load_pretrained
from brq_att_alt.text import CharTokenizer
from helpers import REPO_ROOT, TINY_MODEL, load_script, save_finetuned_run, tiny_model_args

SB_FILES = ("hyperparams.yaml", "model.ckpt", "README.md")


@pytest.fixture
def offline(monkeypatch):
    """No network: HF_HUB_OFFLINE=1, and SpeechBrain's download functions fail if ever called."""
    import speechbrain.utils.fetching as fetching

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_download(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args} {kwargs}")

    monkeypatch.setattr(fetching, "download_file", no_download)
    monkeypatch.setattr(fetching, "download_file_hf", no_download)


def make_run(root: Path, head: bool = True, mixer: str = "fastformer") -> Path:
    """A run folder (``root/save`` in the layout of the recipes) holding a random tiny model."""
    save_finetuned_run(root, mixer=mixer, head=head)
    (root / "hyperparams.yaml").write_text("dataset: synthetic\ntrain_splits: [train-clean-100]\n"
                                           "lm_alpha: 0.7\nlm_beta: 1.25\nbeam_size: 6\n")
    return root


def folder_digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def asr_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("asr_run"))


@pytest.fixture(scope="module")
def real_batch(real_speech):
    from speechbrain.utils.data_utils import batch_pad_right

    files = sorted(real_speech.glob("*.wav"))
    wavs, lens = batch_pad_right([read_audio(f) for f in files])
    return files, wavs, lens


# ------------------------------------------------------------------ decoding pieces
def test_greedy_ids_equal_the_projects_greedy_decode_on_padded_batches():
    torch.manual_seed(0)
    tok = CharTokenizer()
    for _ in range(20):
        B, T = 4, 30
        logits = torch.randn(B, T, tok.vocab_size) * 3
        logits[..., 1] += 1.5  # many spaces: leading, trailing and repeated separators
        lengths = torch.randint(1, T + 1, (B,))
        lengths[0] = T
        mask = torch.arange(T)[None] >= lengths[:, None]
        marked = mark_padding_blank(logits.log_softmax(-1), mask)
        assert valid_frames(marked).tolist() == lengths.tolist()
        ids = greedy_ctc_ids(marked, torch.rand(B), blank_id=0, space_id=1)  # relative lengths are ignored
        texts = ["".join(tok.labels[i] for i in seq) for seq in ids]
        assert texts == greedy_decode(logits, lengths, tok)


# ------------------------------------------------------------------ the folder
def test_fine_tuned_export_is_a_hub_ready_folder(asr_run, tmp_path):
    before = folder_digest(asr_run)
    out = export(asr_run, tmp_path / "model")
    assert folder_digest(asr_run) == before  # the run is only read
    names = {p.name for p in out.iterdir()}
    assert set(SB_FILES) | {"brq_model.json", "head.ckpt", "ctc_head.json", "tokenizer.ckpt", "tokenizer.json",
                            "export.json"} == names
    # the weights are the checkpoint's, byte for byte
    assert (out / "model.ckpt").read_bytes() == (asr_run / "save" / "CKPT+exported" / "model.ckpt").read_bytes()
    hparams = (out / "hyperparams.yaml").read_text()
    assert str(tmp_path) not in hparams and str(asr_run) not in hparams
    assert not [line for line in hparams.splitlines() if "/" in line.split("#")[0]]  # no path at all
    card = (out / "README.md").read_text()
    assert card.startswith("---\n")
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "speechbrain" and front["license"] == "apache-2.0"
    assert {"speechbrain", "best-rq", "fastformer", "automatic-speech-recognition"} <= set(front["tags"])
    assert front["pipeline_tag"] == "automatic-speech-recognition"
    for words in ("EncoderASR.from_hparams", "huggingface-cli upload", "upload_folder", "fastformer"):
        assert words in card
    assert str(asr_run) not in card and str(tmp_path) not in card
    info = json.loads((out / "export.json").read_text())
    assert info["kind"] == "asr" and info["checkpoint"] == "CKPT+exported" and info["decoding"] is None
    assert str(tmp_path) not in (out / "export.json").read_text()
    # huggingface_hub reads the card's metadata as a model repository's (offline)
    repocard = pytest.importorskip("huggingface_hub.repocard")
    meta = repocard.metadata_load(out / "README.md")
    assert meta["library_name"] == "speechbrain" and "ctc" in meta["tags"]
    assert repocard.ModelCard.load(out / "README.md").data.license == "apache-2.0"


def test_output_folder_rules(asr_run, tmp_path):
    out = tmp_path / "model"
    (out / "keep").mkdir(parents=True)
    (out / "keep" / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty.*--force"):
        export(asr_run, out)
    assert (out / "keep" / "notes.txt").read_text() == "mine"  # refused: nothing written
    export(asr_run, out, force=True)
    assert not (out / "keep").exists() and (out / "hyperparams.yaml").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left
    before = folder_digest(asr_run)
    for inside in (asr_run, asr_run / "save", asr_run / "save" / "export", asr_run.parent):
        with pytest.raises(ExportError, match="inside the run"):
            export(asr_run, inside, force=True)
    assert folder_digest(asr_run) == before
    # the command line: one-line error, exit status 2
    assert export_main([str(asr_run), str(out)]) == 2
    assert export_main([str(tmp_path / "missing"), str(tmp_path / "x")]) == 2


def test_export_command_writes_the_same_folder_as_the_function(asr_run, tmp_path):
    """``python -m brq_att_alt.export RUN OUT``, as the README gives it: exit 0, the folder's path
    printed last, and the files that ``export()`` writes, the weights byte for byte."""
    import subprocess
    import sys

    out = tmp_path / "by_command"
    proc = subprocess.run([sys.executable, "-m", "brq_att_alt.export", str(asr_run), str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(out)
    reference = export(asr_run, tmp_path / "by_function")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())
    for name in ("model.ckpt", "head.ckpt", "tokenizer.ckpt", "hyperparams.yaml", "brq_model.json"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def test_lm_checks(asr_run, tmp_path):
    bad = tmp_path / "lm.txt"
    bad.write_text("not an lm\n")
    with pytest.raises(ExportError, match="neither an ARPA"):
        export(asr_run, tmp_path / "a", lm=bad)
    with pytest.raises(ExportError, match="no such file"):
        export(asr_run, tmp_path / "b", lm=tmp_path / "missing.arpa")
    encoder_run = make_run(tmp_path / "pt", head=False)
    arpa = tmp_path / "ok.arpa"
    arpa.write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0 A\n\n\\end\\\n")
    with pytest.raises(ExportError, match="pre-training run"):
        export(encoder_run, tmp_path / "c", lm=arpa)
    out = tmp_path / "d"
    (out / "sub").mkdir(parents=True)
    inner = out / "sub" / "lm.arpa"
    inner.write_text(arpa.read_text())
    with pytest.raises(ExportError, match="--force would replace"):
        export(asr_run, out, lm=inner, force=True)
    assert inner.is_file()
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_non_finite_or_mismatched_weights_are_refused(tmp_path, offline):
    run = make_run(tmp_path / "run")
    ckpt = run / "save" / "CKPT+exported"
    state = torch.load(ckpt / "model.ckpt")
    good = {k: v.clone() for k, v in state.items()}
    key = next(k for k, v in state.items() if v.is_floating_point() and k.startswith("encoder."))
    state[key][0] = float("nan")
    torch.save(state, ckpt / "model.ckpt")
    with pytest.raises(ExportError, match="NaN"):
        export(run, tmp_path / "out")
    torch.save(good, ckpt / "model.ckpt")
    out = export(run, tmp_path / "out")
    # a model.ckpt that does not fit hyperparams.yaml is an error at load time, not a warning
    from speechbrain.inference.ASR import EncoderASR

    other = BestRQModel(mixer="fastformer", **{**TINY_MODEL, "num_layers": 1}).state_dict()
    torch.save(other, out / "model.ckpt")
    with pytest.raises(RuntimeError, match="does not fit"):
        EncoderASR.from_hparams(source=str(out), savedir=str(tmp_path / "savedir"))


def test_checkpoint_choice(tmp_path):
    run = make_run(tmp_path / "run")
    save = run / "save"
    # a second, better checkpoint (lower validation WER) is the default; --checkpoint picks another
    (save / "CKPT+better").mkdir()
    for name in ("model.ckpt", "head.ckpt"):
        (save / "CKPT+better" / name).write_bytes((save / "CKPT+exported" / name).read_bytes())
    (save / "CKPT+better" / "CKPT.yaml").write_text("WER: 10.0\nepoch: 3\nunixtime: 1.0\n")
    (save / "CKPT+exported" / "CKPT.yaml").write_text("WER: 50.0\nepoch: 4\nunixtime: 2.0\n")
    (run / "train_log.txt").write_text("epoch: 3, steps: 30 - train loss: 2.0 - valid loss: 1.5, valid WER: 10.0\n"
                                       "epoch: 4, steps: 40 - train loss: 1.9 - valid loss: 1.6, valid WER: 50.0\n")
    (run / "wer_test-clean.json").write_text(json.dumps({
        "split": "test-clean", "checkpoint_epoch": 3,
        "greedy": {"wer": 12.5, "ci_low": 10.0, "ci_high": 15.0, "ref_words": 80, "utterances": 8}}))
    best = export(run, tmp_path / "best")
    info = json.loads((best / "export.json").read_text())
    assert info["checkpoint"] == "CKPT+better" and info["checkpoint_meta"] == {"WER": 10.0, "epoch": 3}
    card = (best / "README.md").read_text()
    assert "epoch: 3, steps: 30" in card and "| test-clean | greedy | 12.50 | [10.00, 15.00] |" in card
    named = export(run, tmp_path / "named", checkpoint="CKPT+exported")
    assert json.loads((named / "export.json").read_text())["checkpoint"] == "CKPT+exported"
    assert "exported checkpoint is from epoch 4" in (named / "README.md").read_text()


# ------------------------------------------------------------------ SpeechBrain's interfaces
def test_encoder_asr_transcribes_as_the_project(asr_run, tmp_path, real_batch, offline):
    from speechbrain.inference.ASR import EncoderASR

    files, wavs, lens = real_batch
    out = export(asr_run, tmp_path / "model")
    asr = EncoderASR.from_hparams(source=str(out), savedir=str(tmp_path / "savedir"))
    ours = BestRQTranscriber.from_folder(asr_run).transcribe_files(files)
    assert any(ours)
    assert [asr.transcribe_file(str(f)) for f in files] == ours
    words, _ = asr.transcribe_batch(wavs, lens)  # padded batch: exact frame counts
    assert words == ours
    # the project's own interface and command line read the exported folder too
    assert BestRQTranscriber.from_folder(out).transcribe_files(files) == ours
    assert load_pretrained(out).config == load_pretrained(asr_run).config


def test_encoder_asr_decodes_with_the_exported_lm(asr_run, tmp_path, real_batch, offline, capsys):
    pytest.importorskip("kenlm")
    pytest.importorskip("pygtrie")
    from speechbrain.inference.ASR import EncoderASR

    from brq_att_alt.ngram import build_arpa
    from brq_att_alt.transcribe import main as transcribe_main

    files, wavs, lens = real_batch
    greedy = BestRQTranscriber.from_folder(asr_run).transcribe_files(files)
    lm = build_arpa([" ".join(t.split()[:3]) for t in greedy if t] + ["SKS PSF"], tmp_path / "lm.arpa", order=2)
    out = export(asr_run, tmp_path / "model", lm=lm, beam_size=4)
    info = json.loads((out / "export.json").read_text())
    assert info["decoding"] == {"lm": "lm.ckpt", "alpha": 0.7, "beta": 1.25, "beam_size": 4}  # the run's, --beam-size
    ours = BestRQTranscriber.from_folder(asr_run, lm_path=lm, alpha=0.7, beta=1.25, beam_size=4).transcribe_files(files)
    assert ours != greedy  # the LM changes the transcripts
    asr = EncoderASR.from_hparams(source=str(out), savedir=str(tmp_path / "savedir"))
    assert asr.transcribe_batch(wavs, lens)[0] == ours
    assert [asr.transcribe_file(str(f)) for f in files[:3]] == ours[:3]
    plain = EncoderASR.from_hparams(source=str(out), savedir=str(tmp_path / "savedir2"),
                                    overrides="decoding_function: !ref <greedy_decoding>")
    assert plain.transcribe_batch(wavs, lens)[0] == greedy
    # the project's interface uses the exported LM unless told not to
    assert BestRQTranscriber.from_folder(out).transcribe_files(files) == ours
    assert BestRQTranscriber.from_folder(out, lm_path="").transcribe_files(files) == greedy
    for extra, expected in (([], ours), (["--no-lm"], greedy)):
        assert transcribe_main(["--model", str(out), *extra, *map(str, files)]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert [line.split("\t", 1)[1] if "\t" in line else "" for line in lines] == expected


def test_waveform_encoder_returns_every_layer_as_load_pretrained(tmp_path, real_batch, offline):
    from speechbrain.inference.encoders import WaveformEncoder

    files, wavs, lens = real_batch
    run = make_run(tmp_path / "run", head=False, mixer="summarymixing")
    out = export(run, tmp_path / "model")
    assert {"hyperparams.yaml", "model.ckpt", "brq_model.json", "README.md", "export.json"} == \
        {p.name for p in out.iterdir()}
    front = yaml.safe_load((out / "README.md").read_text().split("---\n")[1])
    assert front["pipeline_tag"] == "feature-extraction"
    enc = WaveformEncoder.from_hparams(source=str(out), savedir=str(tmp_path / "savedir"))
    got = enc.encode_batch(wavs, lens)
    ref = load_pretrained(run).encode(wavs, lens, hidden=True)
    assert got["embeddings"].shape == (TINY_MODEL["num_layers"] + 1, *ref.output.shape)
    torch.testing.assert_close(got["embeddings"], torch.stack(ref.hidden), atol=1e-5, rtol=0)
    assert torch.equal(got["padding_mask"], ref.padding_mask)
    assert got["lengths"].tolist() == (~ref.padding_mask).sum(1).tolist()
    one = enc.encode_file(str(files[3]))
    n = int(got["lengths"][3])
    assert one.shape == (TINY_MODEL["num_layers"] + 1, 1, n, TINY_MODEL["d_model"])
    torch.testing.assert_close(one[:, 0], got["embeddings"][:, 3, :n], atol=1e-5, rtol=0)


# ------------------------------------------------------------------ from the recipes' runs
@pytest.mark.slow
def test_demo_runs_export_and_load_offline(tiny_corpus, tmp_path, offline):
    """A tiny pre-training run and a tiny fine-tuning run from it, as the demo makes them,
    exported and loaded with SpeechBrain's interfaces (no network)."""
    from speechbrain.inference.ASR import EncoderASR
    from speechbrain.inference.encoders import WaveformEncoder

    pretrain = load_script(REPO_ROOT / "train.py")
    pt_out = tmp_path / "pretrain"
    pretrain.main([str(REPO_ROOT / "hparams" / "brq_tiny.yaml"), f"--data_folder={tiny_corpus}",
                   f"--output_folder={pt_out}", "--number_of_epochs=1", "--max_batch_length=6",
                   "--num_buckets=2", "--progressbar=False", "--ckpt_interval_minutes=0",
                   *tiny_model_args(codebook_size=256)])
    finetune = load_script(REPO_ROOT / "recipes" / "finetune_ctc" / "train.py")
    ft_out = tmp_path / "finetune"
    ft_yaml = next((REPO_ROOT / "recipes" / "finetune_ctc" / "hparams").glob("finetune_ctc*.yaml"))
    finetune.main([str(ft_yaml), f"--pretrained_path={pt_out}", f"--data_folder={tiny_corpus}",
                   f"--output_folder={ft_out}", "--test_splits=[test-clean]", "--progressbar=False",
                   "--beam_size=4", "--bootstrap_samples=50", "--head_hidden=32", "--max_batch_length=12",
                   "--number_of_epochs=1"])
    files = sorted((tiny_corpus / "test-clean").rglob("*.flac"))

    encoder_folder = export(pt_out, tmp_path / "export_pt")
    enc = WaveformEncoder.from_hparams(source=str(encoder_folder), savedir=str(tmp_path / "sd_pt"))
    wav = read_audio(files[0]).unsqueeze(0)
    ref = load_pretrained(pt_out).encode(wav, None, hidden=True)
    torch.testing.assert_close(enc.encode_batch(wav, torch.ones(1))["embeddings"], torch.stack(ref.hidden),
                               atol=1e-5, rtol=0)
    card = (encoder_folder / "README.md").read_text()
    assert "epoch: 1, steps:" in card  # the run's train log at the checkpoint

    lm = ft_out / "lm" / "train_3gram.arpa"
    kwargs = {"lm": lm} if _has_lm() else {}  # the LM the recipe built; greedy without kenlm
    asr_folder = export(ft_out, tmp_path / "export_ft", **kwargs)
    asr = EncoderASR.from_hparams(source=str(asr_folder), savedir=str(tmp_path / "sd_ft"))
    decoding = {"lm_path": lm, "alpha": 0.8, "beta": 1.5, "beam_size": 4} if kwargs else {}  # the run's settings
    ours = BestRQTranscriber.from_folder(ft_out, **decoding).transcribe_files(files)
    assert [asr.transcribe_file(str(f)) for f in files] == ours
    assert BestRQTranscriber.from_folder(asr_folder).transcribe_files(files) == ours
    card = (asr_folder / "README.md").read_text()
    assert "| test-clean | greedy |" in card
    assert os.path.isfile(asr_folder / "hyperparams.yaml")


def _has_lm() -> bool:
    try:
        import kenlm  # noqa: F401
        import pygtrie  # noqa: F401
    except ImportError:
        return False
    return True
