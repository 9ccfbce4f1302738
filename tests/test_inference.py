"""Inference interface and CLI: transcription, layer-wise features, long recordings in one pass."""

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from brq_att_alt.asr import HEAD_CKPT_NAME, CTCHead
from brq_att_alt.inference import BestRQTranscriber
from brq_att_alt.model import BestRQModel
from brq_att_alt.pretrained import PretrainedEncoder
from brq_att_alt.text import CharTokenizer
from brq_att_alt.transcribe import main as transcribe_main
from helpers import TINY_MODEL, save_finetuned_run, save_run

def expected_frames(num_samples: int) -> int:
    """fbank frames (10 ms hop, centred) padded to a multiple of 4, then / 4."""
    return (num_samples // 160 + 1 + 3) // 4


def make_finetuned_folder(root: Path, mixer: str = "summarymixing", head: bool = True) -> Path:
    return save_finetuned_run(root, mixer=mixer, head=head)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    return make_finetuned_folder(tmp_path_factory.mktemp("ft"))


@pytest.fixture(scope="module")
def pretrained_only(tmp_path_factory):
    return make_finetuned_folder(tmp_path_factory.mktemp("pt"), head=False)


@pytest.fixture(scope="module")
def real_files(real_speech):
    return sorted(real_speech.glob("*.wav"))


# ------------------------------------------------------------- transcription
def test_transcribe_real_recordings(finetuned, real_files):
    assert len(real_files) == 12
    asr = BestRQTranscriber.from_folder(finetuned)
    assert asr.can_transcribe and asr.mixer == "summarymixing"
    texts = asr.transcribe_files(real_files, batch_size=4)
    assert len(texts) == 12 and all(isinstance(t, str) for t in texts)
    assert any(texts), "the untrained head should still emit some characters"
    allowed = set(CharTokenizer().labels[1:])
    assert all(set(t) <= allowed for t in texts)
    # one file at a time gives the same as batched (padding does not leak)
    assert asr.transcribe_file(real_files[5]) == texts[5]
    assert asr.transcribe_files(real_files[:3], batch_size=1) == texts[:3]


def test_cli_transcribes_with_and_without_lm(finetuned, real_files, tmp_path, capsys):
    assert transcribe_main(["--model", str(finetuned), *map(str, real_files)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(f) for f in real_files]
    pytest.importorskip("kenlm")
    pytest.importorskip("pygtrie")
    from brq_att_alt.ngram import build_arpa

    lm = build_arpa(["HELLO WORLD", "THE CAT SAT"], tmp_path / "lm.arpa", order=2)
    feats = tmp_path / "feats.pt"
    argv = ["--model", str(finetuned), "--lm", str(lm), "--beam-size", "4", "--features", str(feats),
            *map(str, real_files[:2])]
    assert transcribe_main(argv) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    saved = torch.load(feats)
    assert list(saved) == [str(f) for f in real_files[:2]]
    import soundfile as sf

    n = sf.info(str(real_files[0])).frames  # 16 kHz files
    assert saved[str(real_files[0])].shape == (3, expected_frames(n), 32)
    # a missing LM file and a missing audio file are reported, not crashes
    assert transcribe_main(["--model", str(finetuned), "--lm", str(tmp_path / "no.arpa"), str(real_files[0])]) == 2
    assert transcribe_main(["--model", str(finetuned), str(tmp_path / "missing.wav"), str(real_files[0])]) == 1
    assert capsys.readouterr().out.count("\t") == 1


# ------------------------------------------------------------------ features
def test_layer_features_shapes(finetuned, pretrained_only, real_files):
    import soundfile as sf

    for folder in (finetuned, pretrained_only):
        asr = BestRQTranscriber.from_folder(folder)
        one = asr.layer_features(real_files[0])
        n0 = sf.info(str(real_files[0])).frames
        assert len(one.hidden) == 3  # front end + 2 layers
        assert all(h.shape == (1, expected_frames(n0), 32) for h in one.hidden)
        assert one.lengths.tolist() == [expected_frames(n0)]
        two = asr.layer_features(real_files[:2])
        n1 = sf.info(str(real_files[1])).frames
        assert two.lengths.tolist() == [expected_frames(n0), expected_frames(n1)]
        assert two.stacked().shape == (3, 2, max(two.lengths), 32)
        # batch entry 0 equals the single-file features on its valid frames
        T = expected_frames(n0)
        assert torch.allclose(two.hidden[-1][0, :T], one.hidden[-1][0], atol=1e-4)
        # a tensor batch works too
        wavs = torch.randn(2, 16000) * 0.1
        feats = asr.layer_features(wavs, torch.tensor([1.0, 0.5]))
        assert feats.lengths.tolist() == [expected_frames(16000), expected_frames(8000)]


def test_pretrained_folder_cannot_transcribe(pretrained_only, real_files, tmp_path, capsys):
    asr = BestRQTranscriber.from_folder(pretrained_only)
    assert not asr.can_transcribe
    with pytest.raises(RuntimeError, match="cannot transcribe"):
        asr.transcribe_file(real_files[0])
    with pytest.raises(FileNotFoundError):
        BestRQTranscriber.from_folder(pretrained_only, require_head=True)
    assert transcribe_main(["--model", str(pretrained_only), str(real_files[0])]) == 2
    out = tmp_path / "f.pt"
    assert transcribe_main(["--model", str(pretrained_only), "--features", str(out), str(real_files[0])]) == 0
    assert torch.load(out)[str(real_files[0])].shape[0] == 3


# -------------------------------------------------------------- long audio
def test_chunked_frontend_is_exact():
    torch.manual_seed(0)
    model = BestRQModel(mixer="fastformer", **TINY_MODEL)
    whole = BestRQTranscriber(PretrainedEncoder(model), frontend_chunk_frames=0)
    pieces = BestRQTranscriber(PretrainedEncoder(model), frontend_chunk_frames=100)
    wavs, lens = torch.randn(2, 16000 * 7 + 123) * 0.1, torch.tensor([1.0, 0.61])
    a, b = whole.layer_features(wavs, lens), pieces.layer_features(wavs, lens)
    assert a.lengths.tolist() == b.lengths.tolist() == [expected_frames(wavs.shape[1]), expected_frames(round(0.61 * wavs.shape[1]))]
    for x, y in zip(a.hidden, b.hidden):
        assert x.shape == y.shape
        assert torch.allclose(x, y, atol=1e-5)


def test_mhsa_long_audio_is_chunked_with_a_warning():
    torch.manual_seed(0)
    asr = BestRQTranscriber(PretrainedEncoder(BestRQModel(mixer="mhsa", **TINY_MODEL)), CTCHead(32, 29, 32), CharTokenizer(),
                            chunk_seconds=10)
    wav = torch.randn(1, 16000 * 25) * 0.1
    with pytest.warns(UserWarning, match="chunks"):
        logp, lengths = asr.log_probs(wav)
    # 10 + 10 + 5 s pieces, each with its own centred first frame
    assert lengths.tolist() == [expected_frames(160000) * 2 + expected_frames(80000)] and logp.shape[1] == lengths[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asr.log_probs(torch.randn(1, 16000 * 5) * 0.1)  # short: one pass, no warning


LONG_AUDIO_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, warnings
    import torch
    torch.set_num_threads(1)
    warnings.simplefilter("error")  # a chunking warning would fail the run
    from brq_att_alt.asr import CTCHead
    from brq_att_alt.inference import BestRQTranscriber
    from brq_att_alt.model import BestRQModel
    from brq_att_alt.pretrained import PretrainedEncoder
    from brq_att_alt.text import CharTokenizer
    torch.manual_seed(0)
    model = BestRQModel(mixer=sys.argv[1], **json.loads(sys.argv[3]))
    asr = BestRQTranscriber(PretrainedEncoder(model), CTCHead(32, 29, 32), CharTokenizer())
    asr.transcribe_batch(torch.randn(1, 16000) * 0.1)  # warm-up
    seconds = float(sys.argv[2])
    wav = torch.randn(1, int(seconds * 16000)) * 0.1
    rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    base = rss()
    logp, lengths = asr.log_probs(wav)
    text = asr.decoder is None and asr.transcribe_batch(wav)
    print(json.dumps({"frames": logp.shape[1], "length": int(lengths[0]), "growth_mb": rss() - base,
                      "chunk_seconds": asr.chunk_seconds, "text_type": type(text).__name__}))
    """
)


@pytest.mark.slow
def test_five_minutes_in_one_pass_with_bounded_memory(tmp_path):
    """5 min of audio through a linear mixer: one pass (all 7501 frames), peak RSS growth bounded.

    The bound (400 MB) is what the fbank and the (chunked) front end need for 5 min at this size;
    an MHSA attention map over 7501 frames alone is 4 heads x 7501^2 x 4 bytes = 900 MB a layer,
    and the un-chunked conv front end alone grows the RSS by about 900 MB.
    """
    script = tmp_path / "long.py"
    script.write_text(LONG_AUDIO_SCRIPT)
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}  # the installed package, no import path
    proc = subprocess.run([sys.executable, str(script), "summarymixing", "300", json.dumps(TINY_MODEL)],
                          capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["chunk_seconds"] == 0.0  # linear mixer: never chunked
    assert result["frames"] == result["length"] == expected_frames(300 * 16000) == 7501
    assert result["text_type"] == "list"
    assert result["growth_mb"] < 400, result


def test_best_checkpoint_is_chosen_by_validation_wer(tmp_path):
    from brq_att_alt.inference import ranked_checkpoints

    save = tmp_path / "save"
    for name, wer, t in (("CKPT+a", 50.0, 3), ("CKPT+b", 30.0, 1), ("CKPT+c", 70.0, 2)):
        (save / name).mkdir(parents=True)
        (save / name / "model.ckpt").write_bytes(b"x")
        (save / name / "CKPT.yaml").write_text(f"WER: {wer}\nend-of-epoch: true\nunixtime: {t}\n")
    assert ranked_checkpoints(save)[0].name == "CKPT+b"
    for name in ("CKPT+a", "CKPT+b", "CKPT+c"):  # no WER recorded: the newest
        meta = save / name / "CKPT.yaml"
        meta.write_text("\n".join(line for line in meta.read_text().splitlines() if not line.startswith("WER")))
    assert ranked_checkpoints(save)[0].name == "CKPT+a"


def test_a_run_without_checkpoint_is_a_clear_error(tmp_path):
    from brq_att_alt.pretrained import load_pretrained

    save = save_run(BestRQModel("mhsa", **TINY_MODEL), tmp_path / "save")
    (save / "CKPT+exported" / "model.ckpt").unlink()
    for load in (load_pretrained, BestRQTranscriber.from_folder):
        with pytest.raises(FileNotFoundError, match=r"No complete CKPT\+\*/model.ckpt in .*has the run saved"):
            load(tmp_path)


# ------------------------------------------------------------ bad input (issue 10)
def test_non_finite_audio_is_a_clear_per_file_error(finetuned, real_files, tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    from brq_att_alt.data.audio import AudioReadError, read_audio

    data = np.zeros(16000, dtype=np.float32)
    data[4000:5000] = np.nan
    bad = tmp_path / "nan.wav"
    sf.write(str(bad), data, 16000, subtype="FLOAT")
    assert torch.isnan(read_audio(bad)).sum() == 1000  # training pipelines read it (their step guard skips it)
    with pytest.raises(AudioReadError, match="non-finite"):
        read_audio(bad, check_finite=True)
    asr = BestRQTranscriber.from_folder(finetuned)
    with pytest.raises(AudioReadError, match="nan.wav"):
        asr.transcribe_file(bad)
    with pytest.raises(AudioReadError, match="non-finite"):
        asr.layer_features(bad)
    with pytest.raises(ValueError, match="NaN or Inf"):
        asr.transcribe_batch(torch.from_numpy(data).unsqueeze(0))
    # the CLI reports it (and a folder given as a file) on one line each and transcribes the others
    assert transcribe_main(["--model", str(finetuned), str(bad), str(tmp_path), str(real_files[0])]) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2
    assert any("non-finite" in e and "nan.wav" in e for e in errors) and any("is a folder" in e for e in errors)
    assert captured.out.strip().splitlines()[0].startswith(str(real_files[0]))


def test_cli_device_and_model_path_errors(finetuned, real_files, tmp_path, capsys):
    if not torch.cuda.is_available():
        assert transcribe_main(["--model", str(finetuned), "--device", "cuda", str(real_files[0])]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "CUDA is not available" in err[0] and "--device cpu" in err[0]
    assert transcribe_main(["--model", str(finetuned), "--device", "gpu0", str(real_files[0])]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert transcribe_main(["--model", str(tmp_path / "no_such_model"), str(real_files[0])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no_such_model" in err[0] and "does not exist" in err[0]


def test_ckpt_folder_loads_exactly_that_checkpoint(tmp_path, real_files):
    from brq_att_alt.inference import ranked_checkpoints

    root = make_finetuned_folder(tmp_path / "ft")
    save = root / "save"
    older = save / "CKPT+exported"
    (older / "CKPT.yaml").write_text("WER: 20.0\nend-of-epoch: true\nunixtime: 1\n")
    newer = save / "CKPT+second"
    newer.mkdir()
    head_state = torch.load(older / HEAD_CKPT_NAME)
    head_state = {k: v + 1.0 if v.is_floating_point() else v for k, v in head_state.items()}
    torch.save(head_state, newer / HEAD_CKPT_NAME)
    torch.save(torch.load(older / "model.ckpt"), newer / "model.ckpt")
    (newer / "CKPT.yaml").write_text("WER: 10.0\nend-of-epoch: true\nunixtime: 2\n")
    assert ranked_checkpoints(save)[0] == newer
    default = BestRQTranscriber.from_folder(root)
    assert default.encoder.checkpoint == newer
    named = BestRQTranscriber.from_folder(older)  # a CKPT+ path: exactly that one
    assert named.encoder.checkpoint == older
    stored = torch.load(older / HEAD_CKPT_NAME)
    assert all(torch.equal(v, stored[k]) for k, v in named.head.state_dict().items())
    assert not torch.equal(named.head.net[-1].bias, default.head.net[-1].bias)
    assert transcribe_main(["--model", str(older), str(real_files[0])]) == 0
    # the best checkpoint's head is truncated: reported, and the next one is used
    (newer / HEAD_CKPT_NAME).write_bytes((newer / HEAD_CKPT_NAME).read_bytes()[:100])
    assert BestRQTranscriber.from_folder(root).encoder.checkpoint == older
    with pytest.raises(Exception, match="CKPT\\+second"):
        BestRQTranscriber.from_folder(newer)
