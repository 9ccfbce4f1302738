"""MP3S dataset preparations: real layouts on small fake folders (made from the tiny
synthetic corpus' audio), their wrong-folder errors, and the synthetic task manifests."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from brq_att_alt.data.audio import read_audio
from brq_att_alt.data.commonvoice import normalize_text, prepare_commonvoice
from brq_att_alt.data.iemocap import prepare_iemocap
from brq_att_alt.data.slurp import prepare_slurp
from brq_att_alt.data.synthetic_tasks import (
    prepare_synthetic_asr, prepare_synthetic_emotion, prepare_synthetic_intent,
    prepare_synthetic_verification,
)
from brq_att_alt.data.datasets import audio_dataset
from brq_att_alt.data.voxceleb import crop_manifest, prepare_voxceleb1, read_trial_list


def rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def clips(tiny_corpus):
    """A few (16 kHz float32 waveform, transcript) pairs from the tiny synthetic corpus."""
    labels = rows(tiny_corpus / "labels.csv")
    out = []
    for r in labels[:8]:
        spk, chapter = r["ID"].split("-")[:2]
        wav = read_audio(tiny_corpus / r["split"] / spk / chapter / f"{r['ID']}.flac")
        out.append((wav.numpy(), r["wrd"], r["duration"]))
    return out


def write(path: Path, wav, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav, 16000, format=fmt) if fmt else sf.write(str(path), wav, 16000)
    return path


# ---------------------------------------------------------------- Common Voice
def test_commonvoice_text_normalisation():
    assert normalize_text("Mae'r tŷ’n  fawr, iawn!") == "MAE'R TŶ'N FAWR IAWN"
    assert normalize_text("Kaixo — zer moduz? 'bai'") == "KAIXO ZER MODUZ BAI"
    assert normalize_text("well-known 3 words") == "WELL KNOWN WORDS"


def test_prepare_commonvoice(tmp_path, clips):
    root = tmp_path / "cv-corpus-11.0-2022-09-21" / "cy"
    header = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale\tsegment\n"
    for split, idx in (("train", [0, 1, 2]), ("dev", [3]), ("test", [4, 5])):
        lines = [header]
        for i in idx:
            wav, text, _ = clips[i]
            name = f"common_voice_cy_{i}.mp3"
            if i == 5:  # a .wav clip listed with the .mp3 name: accepted
                write(root / "clips" / name.replace(".mp3", ".wav"), wav)
            else:
                write(root / "clips" / name, wav, fmt="MP3")
            lines.append(f"spk{i % 2}\t{name}\t{text.lower()}, ok?\t2\t0\t\t\t\tcy\t\n")
        if split == "train":
            lines.append("spk9\tcommon_voice_cy_missing.mp3\tnid yw yma\t2\t0\t\t\t\tcy\t\n")
        (root / f"{split}.tsv").write_text("".join(lines))
    # the release folder + language works as well as the language folder itself
    out = prepare_commonvoice(root.parent, tmp_path / "manifests", language="cy")
    train = rows(out["train"])
    assert [r["ID"] for r in train] == [f"common_voice_cy_{i}" for i in (0, 1, 2)]
    assert train[0]["wrd"] == clips[0][1] + " OK"
    assert train[0]["spk_id"] == "spk0"
    assert float(train[0]["duration"]) == pytest.approx(float(clips[0][2]), abs=0.1)  # mp3 header
    assert Path(train[0]["wav"]).suffix == ".mp3" and Path(train[0]["wav"]).is_file()
    assert "missing audio" in (tmp_path / "manifests" / "train_skipped.txt").read_text()
    test = rows(out["test"])
    assert [Path(r["wav"]).suffix for r in test] == [".mp3", ".wav"]
    assert read_audio(test[0]["wav"]).numel() > 8000  # the mp3 decodes
    assert len(rows(out["dev"])) == 1


def test_prepare_commonvoice_wrong_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare_commonvoice(tmp_path / "nope", tmp_path / "m")
    (tmp_path / "cv" / "clips").mkdir(parents=True)
    (tmp_path / "cv" / "train.tsv").write_text("client_id\tpath\tsentence\n")
    with pytest.raises(FileNotFoundError, match=r"train.tsv, dev.tsv, test.tsv and clips/"):
        prepare_commonvoice(tmp_path / "cv", tmp_path / "m", language="cy")


# ------------------------------------------------------------------ VoxCeleb1
def _voxceleb(root: Path, clips):
    layout = {  # speaker -> [(video, utt)]
        "id10001": [("vid1", "00001"), ("vid1", "00002"), ("vid2", "00001")],
        "id10002": [("vidA", "00001"), ("vidB", "00001")],
        "id10270": [("x6u", "00001"), ("x6u", "00002")],
        "id10271": [("abc", "00001")],
    }
    k = 0
    for spk, utts in layout.items():
        for video, utt in utts:
            base = root / ("vox1_test_wav" if spk.startswith("id102") else "vox1_dev_wav") / "wav"
            write(base / spk / video / f"{utt}.wav", clips[k % len(clips)][0])
            k += 1
    (root / "veri_test2.txt").write_text(
        "1 id10270/x6u/00001.wav id10270/x6u/00002.wav\n"
        "0 id10270/x6u/00001.wav id10271/abc/00001.wav\n"
        "0 id10271/abc/00001.wav id10270/x6u/00002.wav\n"
    )


def test_prepare_voxceleb1(tmp_path, clips):
    root = tmp_path / "VoxCeleb1"
    _voxceleb(root, clips)
    out = prepare_voxceleb1(root, tmp_path / "m", valid_ratio=0.5)
    train, valid, test = rows(out["train"]), rows(out["valid"]), rows(out["test"])
    assert {r["spk_id"] for r in train + valid} == {"id10001", "id10002"}  # test speakers held out
    assert len(train) + len(valid) == 5 and len(valid) == 2  # every 2nd utterance of each speaker
    assert sorted(r["ID"] for r in test) == ["id10270/x6u/00001.wav", "id10270/x6u/00002.wav",
                                             "id10271/abc/00001.wav"]
    assert all(Path(r["wav"]).is_file() and float(r["duration"]) > 0.3 for r in train + test)
    trials = read_trial_list(out["trials"])
    assert trials[0] == (1, "id10270/x6u/00001.wav", "id10270/x6u/00002.wav") and len(trials) == 3


def test_prepare_voxceleb1_skips_bad_files_and_their_trials(tmp_path, clips, monkeypatch):
    import numpy as np

    from brq_att_alt.data import voxceleb

    root = tmp_path / "VoxCeleb1"
    _voxceleb(root, clips)
    nan, inf = clips[0][0].astype(np.float32).copy(), clips[1][0].astype(np.float32).copy()
    nan[10], inf[-1] = np.nan, -np.inf
    dev, test = root / "vox1_dev_wav" / "wav", root / "vox1_test_wav" / "wav"
    bad_train, bad_test = dev / "id10001" / "vid1" / "00002.wav", test / "id10271" / "abc" / "00001.wav"
    sf.write(str(bad_train), nan, 16000, subtype="FLOAT")
    sf.write(str(bad_test), inf, 16000, subtype="FLOAT")
    save = tmp_path / "m"
    out = prepare_voxceleb1(root, save, valid_ratio=0.5, num_workers=1)
    ids = [r["ID"] for r in rows(out["train"]) + rows(out["valid"])]
    assert len(ids) == 4 and "id10001/vid1/00002.wav" not in ids
    assert [r["ID"] for r in rows(out["test"])] == ["id10270/x6u/00001.wav", "id10270/x6u/00002.wav"]
    assert (save / "train_skipped.txt").read_text() == f"{bad_train.resolve()}\tnon-finite samples\n"
    assert (save / "test_skipped.txt").read_text() == f"{bad_test.resolve()}\tnon-finite samples\n"
    assert read_trial_list(out["trials"]) == [(1, "id10270/x6u/00001.wav", "id10270/x6u/00002.wav")]
    # a re-run with the same options neither reads the trial list nor checks a file
    stamp = Path(out["train"]).stat().st_mtime_ns

    def forbidden(*args, **kwargs):
        raise AssertionError("a prepared folder was read again")

    monkeypatch.setattr(voxceleb, "map_files", forbidden)
    monkeypatch.setattr(voxceleb, "read_trial_list", forbidden)
    assert prepare_voxceleb1(root, save, valid_ratio=0.5) == out
    assert Path(out["train"]).stat().st_mtime_ns == stamp


def test_crop_manifest_and_random_crops(tmp_path, clips):
    """MP3S's VoxCeleb training layout: one entry per whole crop of each utterance, each read
    as a random crop of that length (a new one at every read); a shorter utterance is read whole."""
    wavs = [write(tmp_path / f"u{i}.wav", clips[i][0]) for i in range(3)]
    seconds = [len(clips[i][0]) / 16000 for i in range(3)]
    lines = ["ID,duration,wav,spk_id"] + [f"u{i},{seconds[i]:.3f},{w},s{i}" for i, w in enumerate(wavs)]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    crop = 0.5
    out = rows(crop_manifest(tmp_path / "train.csv", tmp_path / "train_crops.csv", crop))
    expected = [max(1, int(d // crop)) for d in seconds]
    assert len(out) == sum(expected) and sum(expected) > 3
    assert [r["ID"] for r in out[: expected[0]]] == [f"u0@{i}" for i in range(expected[0])]
    assert {r["spk_id"] for r in out if r["ID"].startswith("u1@")} == {"s1"}  # columns kept

    data = audio_dataset(tmp_path / "train_crops.csv", crop_seconds=crop, sort=None)
    data.set_output_keys(["id", "sig"])
    full = read_audio(wavs[0])
    reads = [data[0]["sig"] for _ in range(6)]
    assert all(r.shape == (8000,) for r in reads)
    starts = set()
    for r in reads:  # each crop is a contiguous piece of the utterance
        start = [k for k in range(full.numel() - 8000 + 1) if torch.equal(full[k: k + 8000], r)]
        assert start
        starts.add(start[0])
    assert len(starts) > 1  # drawn anew at each read
    whole = audio_dataset(tmp_path / "train.csv", crop_seconds=100.0, sort=None)
    whole.set_output_keys(["sig"])
    assert torch.equal(whole[0]["sig"], full)
    with pytest.raises(ValueError, match="seconds must be > 0"):
        crop_manifest(tmp_path / "train.csv", tmp_path / "x.csv", 0)


def test_prepare_voxceleb1_wrong_folder(tmp_path, clips):
    (tmp_path / "empty" / "audio").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"does not look like VoxCeleb1.*wav/<speaker id>"):
        prepare_voxceleb1(tmp_path / "empty", tmp_path / "m")
    root = tmp_path / "vox"
    _voxceleb(root, clips)
    (root / "veri_test2.txt").unlink()
    with pytest.raises(FileNotFoundError, match="No trial list"):
        prepare_voxceleb1(root, tmp_path / "m")
    shutil.rmtree(root / "vox1_test_wav")
    (root / "veri_test2.txt").write_text("1 id10270/x6u/00001.wav id10270/x6u/00002.wav\n")
    with pytest.raises(FileNotFoundError, match="test archive extracted"):
        prepare_voxceleb1(root, tmp_path / "m")


# ----------------------------------------------------------------------- SLURP
def _slurp(root: Path, clips):
    records = {
        "train": [("alarm", "alarm_set", "wake me up at nine", ["audio-1.flac", "audio-2.flac"]),
                  ("weather", "weather_query", "will it rain", ["audio-3.flac"])],
        "devel": [("music", "play_music", "play jazz", ["audio-4.flac", "audio-404.flac"])],
        "test": [("alarm", "alarm_query", "what alarms", ["audio-5.flac"])],
    }
    k = 0
    for split, recs in records.items():
        lines = []
        for i, (scenario, intent, sentence, files) in enumerate(recs):
            for f in files:
                if f != "audio-404.flac":
                    write(root / "slurp_real" / f, clips[k % len(clips)][0])
                    k += 1
            lines.append(json.dumps({"slurp_id": i, "sentence": sentence, "scenario": scenario,
                                     "intent": intent, "action": intent.split("_")[1],
                                     "recordings": [{"file": f, "wer": 0.0} for f in files]}))
        path = root / "dataset" / "slurp" / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")


def test_prepare_slurp(tmp_path, clips):
    root = tmp_path / "slurp"
    _slurp(root, clips)
    out = prepare_slurp(root, tmp_path / "m")
    train = rows(out["train"])
    assert [(r["ID"], r["scenario"], r["intent"]) for r in train] == [
        ("audio-1", "alarm", "alarm_set"), ("audio-2", "alarm", "alarm_set"), ("audio-3", "weather", "weather_query")]
    assert train[0]["wrd"] == "WAKE ME UP AT NINE"
    dev = rows(out["dev"])
    assert [r["ID"] for r in dev] == ["audio-4"]  # the missing recording is skipped
    assert rows(out["test"])[0]["scenario"] == "alarm"


def test_prepare_slurp_wrong_folder(tmp_path, clips):
    root = tmp_path / "slurp"
    _slurp(root, clips)
    shutil.rmtree(root / "slurp_real")
    with pytest.raises(FileNotFoundError, match=r"lacks the audio folder slurp_real/"):
        prepare_slurp(root, tmp_path / "m")
    with pytest.raises(FileNotFoundError, match=r"dataset/slurp/\{train,devel,test\}.jsonl"):
        prepare_slurp(tmp_path, tmp_path / "m")


# ---------------------------------------------------------------------- IEMOCAP
def _iemocap(root: Path, clips):
    k = 0
    for s in (1, 2, 3):
        dialog = f"Ses0{s}F_impro01"
        lines = ["% header\n", "\n"]
        for j, (speaker, emo) in enumerate([("F", "neu"), ("M", "exc"), ("F", "sad"), ("M", "ang"),
                                            ("F", "fru"), ("M", "hap")]):
            utt = f"{dialog}_{speaker}{j:03d}"
            lines.append(f"[{j}.0000 - {j + 1}.5000]\t{utt}\t{emo}\t[2.5000, 2.5000, 2.5000]\n")
            lines.append("C-E1:\tNeutral;\t()\n")
            write(root / f"Session{s}" / "sentences" / "wav" / dialog / f"{utt}.wav", clips[k % len(clips)][0])
            k += 1
        ev = root / f"Session{s}" / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
        ev.parent.mkdir(parents=True, exist_ok=True)
        ev.write_text("".join(lines))


def test_prepare_iemocap_folds(tmp_path, clips):
    """MP3S's leave-one-speaker-out: test speaker k, validation = the other speaker of its session."""
    root = tmp_path / "IEMOCAP_full_release"
    _iemocap(root, clips)
    folds = prepare_iemocap(tmp_path, tmp_path / "m")  # parent folder accepted
    assert sorted(folds, key=int) == ["1", "2", "3", "4", "5", "6"]  # 3 sessions x (F, M)
    every = rows(tmp_path / "m" / "all.csv")
    assert len(every) == 15  # 5 kept emotions x 3 sessions ("fru" dropped)
    first = [r for r in every if r["ID"] == "Ses01F_impro01_M001"][0]
    assert (first["emo"], first["spk_id"], first["session"], first["speaker"]) == ("hap", "Ses01M", "1", "2")
    assert {(r["spk_id"], r["speaker"]) for r in every if r["session"] == "3"} == {("Ses03F", "5"), ("Ses03M", "6")}
    assert {r["emo"] for r in every} == {"neu", "hap", "sad", "ang"}
    for k, paths in folds.items():
        test, train, valid = rows(paths["test"]), rows(paths["train"]), rows(paths["valid"])
        partner = int(k) + 1 if int(k) % 2 else int(k) - 1  # MP3S's valid speaker
        assert {r["speaker"] for r in test} == {k}
        assert {r["speaker"] for r in valid} == {str(partner)}
        assert {r["speaker"] for r in train} == {str(n) for n in range(1, 7)} - {k, str(partner)}
        assert len(train) + len(valid) + len(test) == 15
    assert sorted(prepare_iemocap(tmp_path, tmp_path / "m", test_speakers=[4])) == ["4"]  # prepared: reused
    with pytest.raises(ValueError, match="Test speaker 9 not in the data"):
        prepare_iemocap(tmp_path, tmp_path / "m", test_speakers=[9])


def test_prepare_iemocap_wrong_folder(tmp_path):
    (tmp_path / "Session1" / "sentences").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"does not look like IEMOCAP.*EmoEvaluation"):
        prepare_iemocap(tmp_path, tmp_path / "m")


# -------------------------------------------------------------- synthetic tasks
def _nan_wav(path: Path, wav):
    """``wav`` as a float WAV with one NaN sample (float files are the ones that can hold NaN)."""
    broken = np.asarray(wav, dtype=np.float32).copy()
    broken[len(broken) // 2] = np.nan
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), broken, 16000, format="WAV", subtype="FLOAT")
    return path


def _skipped(path: Path) -> dict:
    return dict(line.split("\t") for line in path.read_text().splitlines())


def test_non_finite_audio_is_left_out_of_every_mp3s_preparation(tmp_path, clips):
    """Common Voice, SLURP and IEMOCAP: a file with NaN samples is not in the manifest and is
    listed, with the reason, in the skipped-files report (LibriSpeech / VoxCeleb: test_data)."""
    # Common Voice: the first train clip replaced by a NaN float WAV (a .wav under the .mp3 name)
    cv = tmp_path / "cv"
    header = "client_id\tpath\tsentence\n"
    for split, idx in (("train", [0, 1]), ("dev", [2]), ("test", [3])):
        lines = [header]
        for i in idx:
            name = f"clip_{i}.mp3"
            if i == 0:
                _nan_wav(cv / "clips" / f"clip_{i}.wav", clips[i][0])
            else:
                write(cv / "clips" / name, clips[i][0], fmt="MP3")
            lines.append(f"spk\t{name}\t{clips[i][1]}\n")
        (cv / f"{split}.tsv").write_text("".join(lines))
    out = prepare_commonvoice(cv, tmp_path / "cv_m")
    assert [r["ID"] for r in rows(out["train"])] == ["clip_1"]
    assert _skipped(tmp_path / "cv_m" / "train_skipped.txt") == {
        str((cv / "clips" / "clip_0.wav").resolve()): "non-finite samples"}

    # SLURP: audio-2 damaged
    slurp = tmp_path / "slurp"
    _slurp(slurp, clips)
    _nan_wav(slurp / "slurp_real" / "audio-2.flac", clips[1][0])  # float WAV data under a .flac name
    out = prepare_slurp(slurp, tmp_path / "slurp_m")
    assert [r["ID"] for r in rows(out["train"])] == ["audio-1", "audio-3"]
    assert _skipped(tmp_path / "slurp_m" / "train_skipped.txt") == {
        str((slurp / "slurp_real" / "audio-2.flac").resolve()): "non-finite samples"}
    assert list(_skipped(tmp_path / "slurp_m" / "dev_skipped.txt").values()) == ["missing audio"]

    # IEMOCAP: one labelled utterance damaged
    iemocap = tmp_path / "IEMOCAP_full_release"
    _iemocap(iemocap, clips)
    bad = iemocap / "Session2" / "sentences" / "wav" / "Ses02F_impro01" / "Ses02F_impro01_F000.wav"
    _nan_wav(bad, clips[0][0])
    prepare_iemocap(iemocap, tmp_path / "ie_m")
    every = rows(tmp_path / "ie_m" / "all.csv")
    assert len(every) == 14 and "Ses02F_impro01_F000" not in {r["ID"] for r in every}
    assert _skipped(tmp_path / "ie_m" / "all_skipped.txt") == {str(bad.resolve()): "non-finite samples"}


def test_synthetic_task_manifests(tiny_corpus, tmp_path):
    labels = rows(tiny_corpus / "labels.csv")
    speakers = sorted({r["spk_id"] for r in labels}, key=int)

    sv = prepare_synthetic_verification(tiny_corpus, tmp_path / "sv", num_test_speakers=2,
                                        train_splits=["train-clean-100"], valid_splits=["dev-clean"],
                                        test_splits=["test-clean", "dev-clean"])
    assert {r["spk_id"] for r in rows(sv["train"])} == set(speakers[:2])
    test = rows(sv["test"])
    assert {r["spk_id"] for r in test} == set(speakers[2:]) and len(test) == 8
    trials = read_trial_list(sv["trials"])
    assert len(trials) == 8 * 7 // 2
    spk = {r["ID"]: r["spk_id"] for r in test}
    assert all(label == int(spk[a] == spk[b]) for label, a, b in trials)
    assert sum(label for label, _, _ in trials) == 2 * (4 * 3 // 2)

    ic = prepare_synthetic_intent(tiny_corpus, tmp_path / "ic", {"train": ["train-clean-100"], "test": ["test-clean"]})
    by_id = {r["ID"]: r for r in labels}
    assert all(r["scenario"] == by_id[r["ID"]]["scenario"] and Path(r["wav"]).is_file() for r in rows(ic["train"]))

    asr = prepare_synthetic_asr(tiny_corpus, tmp_path / "asr", {"train": ["train-clean-100"]})
    assert [r["wrd"] for r in rows(asr["train"])] == [r["wrd"] for r in labels if r["split"] == "train-clean-100"]

    folds = prepare_synthetic_emotion(tiny_corpus, tmp_path / "er", num_speakers=4)
    every = rows(tmp_path / "er" / "all.csv")
    assert {r["session"] for r in every if r["spk_id"] in speakers[:2]} == {"1"}
    assert {r["session"] for r in every if r["spk_id"] in speakers[2:]} == {"2"}
    assert {r["spk_id"]: r["speaker"] for r in every} == {s: str(i + 1) for i, s in enumerate(speakers)}
    assert all(r["emo"] == by_id[r["ID"]]["style"] for r in every)
    assert sorted(folds) == ["1", "2", "3", "4"]
    assert {r["spk_id"] for r in rows(folds["1"]["test"])} == {speakers[0]}
    assert {r["spk_id"] for r in rows(folds["1"]["valid"])} == {speakers[1]}
    assert {r["spk_id"] for r in rows(folds["1"]["train"])} == set(speakers[2:])
    with pytest.raises(ValueError, match="num_speakers must be even"):
        prepare_synthetic_emotion(tiny_corpus, tmp_path / "er2", num_speakers=3)

    with pytest.raises(FileNotFoundError, match="labels.csv"):
        prepare_synthetic_intent(tmp_path, tmp_path / "x", {"train": ["train-clean-100"]})
    with pytest.raises(ValueError, match="num_test_speakers"):
        prepare_synthetic_verification(tiny_corpus, tmp_path / "y", num_test_speakers=4)
