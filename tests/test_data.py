"""Data layer: synthetic eSpeak corpus, LibriSpeech preparation, audio reading."""

import csv
import hashlib
import importlib.util
import json
import platform
import random
import re
import runpy
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from brq_att_alt.data import prepare_librispeech, read_audio
from brq_att_alt.data.audio import AudioReadError
from brq_att_alt.data.espeak import EspeakError, EspeakWorker
from brq_att_alt.data.synthetic import (
    COMPLETE_MARKER,
    INCOMPLETE_MARKER,
    LABEL_COLUMNS,
    STYLES,
    load_labels,
    make_speakers,
    make_synthetic_corpus,
    plan_corpus,
    prosody_params,
)
from brq_att_alt.data.synthetic_text import SCENARIOS, make_sentence

SPLITS = ("train-clean-100", "dev-clean", "test-clean")
ID_RE = re.compile(r"^(\d+)-(\d+)-(\d{4})$")
WORDS_RE = re.compile(r"^[A-Z]+( [A-Z]+)*$")
REPO_ROOT = Path(__file__).resolve().parents[1]
needs_espeak = pytest.mark.skipif(importlib.util.find_spec("espeakng_loader") is None,
                                  reason="needs espeakng-loader (libespeak-ng)")


# ----------------------------------------------------------------------------- helpers
def _voiced_frames(x, n=640, hop=160, thr=0.02):
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop]
    return frames[np.sqrt((frames ** 2).mean(axis=1)) > thr]


def median_f0(x, sr=16000):
    """Median F0 (Hz) of voiced frames by autocorrelation."""
    lo, hi = int(sr / 450), int(sr / 60)
    f0 = []
    for fr in _voiced_frames(x):
        fr = fr - fr.mean()
        ac = np.correlate(fr, fr, "full")[len(fr) - 1:]
        k = lo + int(np.argmax(ac[lo:hi]))
        if ac[k] > 0.3 * ac[0]:
            f0.append(sr / k)
    assert f0, "no voiced frame found"
    return float(np.median(f0))


def long_term_log_spectrum(x, n=512):
    frames = _voiced_frames(x, n=n)
    spec = np.abs(np.fft.rfft(frames * np.hanning(n), axis=1)) ** 2
    return np.log(spec.mean(axis=0) + 1e-10)


def rms(x):
    return float(np.sqrt(np.mean(x ** 2)))


def speak(requests):
    """[(text, speaker, style, seed)] -> float32 16 kHz waveforms, synthesised as the corpus is
    (one fresh eSpeak worker, no lead silence or noise floor)."""
    jobs = [dict(text=text.lower() + ".", seed=seed, **prosody_params(spk, style))
            for text, spk, style, seed in requests]
    with EspeakWorker(jobs) as worker:
        return list(worker.audio(16000))


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def corpus_options(corpus):
    return json.loads((corpus / COMPLETE_MARKER).read_text())["options"]


# ----------------------------------------------------------------------------- synthetic corpus
def test_tiny_corpus_layout(tiny_corpus):
    opts = corpus_options(tiny_corpus)
    for split in SPLITS:
        n_per_spk = opts["utts_per_speaker"][split]
        speakers = sorted(p.name for p in (tiny_corpus / split).iterdir())
        assert len(speakers) == opts["num_speakers"]
        assert all(s.isdigit() for s in speakers)
        for spk in speakers:
            chapters = list((tiny_corpus / split / spk).iterdir())
            assert len(chapters) == 1 and chapters[0].name.isdigit()
            chapter = chapters[0]
            flacs = sorted(chapter.glob("*.flac"))
            assert len(flacs) == n_per_spk
            trans = chapter / f"{spk}-{chapter.name}.trans.txt"
            lines = trans.read_text().splitlines()
            ids = [line.split(" ", 1)[0] for line in lines]
            assert ids == [f.stem for f in flacs]
            for line in lines:
                uid, words = line.split(" ", 1)
                m = ID_RE.match(uid)
                assert m and m.group(1) == spk and m.group(2) == chapter.name
                assert WORDS_RE.match(words), words
    # chapters are unique across splits, like LibriSpeech
    chapters = [c.name for s in SPLITS for c in (tiny_corpus / s).glob("*/*")]
    assert len(chapters) == len(set(chapters))
    assert "seed" in (tiny_corpus / "README.txt").read_text()


def test_tiny_corpus_audio(tiny_corpus):
    labels = {r["ID"]: r for r in load_labels(tiny_corpus)}
    flacs = sorted(tiny_corpus.glob("*/*/*/*.flac"))
    assert len(flacs) == len(labels) > 0
    for path in flacs:
        info = sf.info(str(path))
        assert info.samplerate == 16000 and info.channels == 1
        assert info.format == "FLAC" and info.subtype == "PCM_16"
        assert 0.8 < info.duration < 10.0, (path, info.duration)
        assert abs(info.duration - labels[path.stem]["duration"]) < 1e-3
        x, _ = sf.read(str(path), dtype="float32")
        assert rms(x) > 0.01, f"{path} is (nearly) silent"
        assert np.abs(x).max() < 1.0
        # roughly 2.5 to 5 words per second of speech
        words = len(labels[path.stem]["wrd"].split())
        assert 1.0 < words / info.duration < 6.0, (path, words, info.duration)


def test_labels_consistent_with_files(tiny_corpus):
    opts = corpus_options(tiny_corpus)
    with open(tiny_corpus / "labels.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert tuple(header) == LABEL_COLUMNS
    rows = load_labels(tiny_corpus)
    trans = {}
    for path in tiny_corpus.glob("*/*/*/*.trans.txt"):
        for line in path.read_text().splitlines():
            uid, words = line.split(" ", 1)
            trans[uid] = (path.parts[-4], path.parts[-3], words)
    assert {r["ID"] for r in rows} == set(trans)
    voices = {}
    for r in rows:
        split, spk, words = trans[r["ID"]]
        assert (r["split"], r["spk_id"], r["wrd"]) == (split, spk, words)
        assert r["scenario"] in SCENARIOS and r["style"] in STYLES
        assert r["gender"] in ("male", "female")
        assert (tiny_corpus / split / spk / r["ID"].split("-")[1] / f"{r['ID']}.flac").is_file()
        voices.setdefault(r["spk_id"], set()).add(r["voice"])
    # one voice per speaker, distinct voices, every speaker in every split
    assert all(len(v) == 1 for v in voices.values())
    assert len({next(iter(v)) for v in voices.values()}) == opts["num_speakers"]
    for split in SPLITS:
        per_spk = Counter(r["spk_id"] for r in rows if r["split"] == split)
        assert set(per_spk) == set(voices)
        assert set(per_spk.values()) == {opts["utts_per_speaker"][split]}


def test_corpus_reproducible(tiny_corpus, tmp_path):
    opts = corpus_options(tiny_corpus)
    kwargs = dict(num_speakers=opts["num_speakers"], utts_per_speaker=opts["utts_per_speaker"])
    again = make_synthetic_corpus(tmp_path / "again", seed=opts["seed"], **kwargs)
    assert (again / "labels.csv").read_bytes() == (tiny_corpus / "labels.csv").read_bytes()
    for path in sorted(tiny_corpus.glob("*/*/*/*")):
        twin = again / path.relative_to(tiny_corpus)
        if path.suffix == ".flac":
            a, _ = sf.read(str(path), dtype="int16")
            b, _ = sf.read(str(twin), dtype="int16")
            assert np.array_equal(a, b), f"audio differs: {path.name}"
        else:
            assert path.read_text() == twin.read_text()
    # another seed: other texts and labels
    other = plan_corpus(seed=opts["seed"] + 1, **kwargs)
    same = plan_corpus(seed=opts["seed"], **kwargs)
    assert [u.wrd for u in other] != [u.wrd for u in same]
    assert [u.wrd for u in same] == [r["wrd"] for r in load_labels(tiny_corpus)]


# The tiny corpus of conftest.py as made by the generator's format 2 (FORMAT_VERSION; more
# varied voices and prosody styles than format 1): a refactoring must not change the corpus,
# and a change of the generator's output must bump FORMAT_VERSION and these digests.
TINY_CORPUS_TEXT_SHA256 = "08c872cfc9ff89ce64e128098609d1bd5d4842b28df29abb06dcaebe309ffbde"
TINY_CORPUS_SHA256 = "d2e3b5b90b22b554736f6ca788cad347ae43c7ce73ecc44a458e63bd18504926"
# Where that digest was taken: the int16 samples depend on the CPU's floating-point
# kernels (resampling), so the audio digest is only compared on the same platform.
TINY_CORPUS_PLATFORM = {"cpu": "AMD EPYC", "torch": "2.14.1+cu130", "torchaudio": "2.11.0+cu130",
                        "espeak_ng": "1.52.0"}


def corpus_digest(root, audio=True):
    """sha256 of labels.csv, every trans.txt and (``audio``) every FLAC's int16 samples, in path order."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        if path.suffix == ".flac" and audio:
            data = sf.read(str(path), dtype="int16")[0].tobytes()
        elif path.name == "labels.csv" or path.name.endswith(".trans.txt"):
            data = path.read_bytes()
        else:
            continue
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + data)
    return h.hexdigest()


def _platform(corpus):
    import torchaudio

    cpu = platform.processor() or platform.machine()
    try:
        cpu = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M).group(1).strip()
    except (OSError, AttributeError):
        pass
    espeak = json.loads((corpus / COMPLETE_MARKER).read_text())["espeak_ng_version"]
    return {"cpu": cpu, "torch": torch.__version__, "torchaudio": torchaudio.__version__, "espeak_ng": espeak}


def test_corpus_texts_unchanged(tiny_corpus):
    from brq_att_alt.data.synthetic import FORMAT_VERSION

    assert FORMAT_VERSION == 2  # the digests below belong to this format
    assert corpus_digest(tiny_corpus, audio=False) == TINY_CORPUS_TEXT_SHA256


def test_corpus_audio_unchanged(tiny_corpus):
    here = _platform(tiny_corpus)
    if here != TINY_CORPUS_PLATFORM:
        pytest.skip(f"audio digest recorded on {TINY_CORPUS_PLATFORM}, this is {here}")
    assert corpus_digest(tiny_corpus) == TINY_CORPUS_SHA256


@needs_espeak
def test_corpus_reuse_half_written_and_conflicts(tmp_path):
    out = tmp_path / "c"
    kwargs = dict(num_speakers=2, utts_per_speaker=1, seed=7)
    make_synthetic_corpus(out, **kwargs)
    flac = sorted(out.glob("*/*/*/*.flac"))[0]
    stamp = (flac.stat().st_mtime_ns, (out / COMPLETE_MARKER).stat().st_mtime_ns)
    t0 = time.perf_counter()
    assert make_synthetic_corpus(out, **kwargs) == out.resolve()
    assert time.perf_counter() - t0 < 1.0
    assert (flac.stat().st_mtime_ns, (out / COMPLETE_MARKER).stat().st_mtime_ns) == stamp
    # a half-written corpus (killed run) is regenerated
    flac.unlink()
    (out / INCOMPLETE_MARKER).write_text("{}")
    make_synthetic_corpus(out, **kwargs)
    assert flac.is_file() and not (out / INCOMPLETE_MARKER).exists()
    # other options: refused unless overwrite
    with pytest.raises(FileExistsError):
        make_synthetic_corpus(out, num_speakers=2, utts_per_speaker=1, seed=8)
    before = (out / "labels.csv").read_text()
    make_synthetic_corpus(out, num_speakers=2, utts_per_speaker=1, seed=8, overwrite=True)
    assert (out / "labels.csv").read_text() != before
    # a foreign non-empty folder is not clobbered
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        make_synthetic_corpus(foreign, **kwargs)
    with pytest.raises(ValueError):
        make_synthetic_corpus(tmp_path / "bad", num_speakers=2, utts_per_speaker={"dev-cleen": 1})


def _corpus_script():
    return runpy.run_path(str(REPO_ROOT / "scripts" / "make_synthetic_corpus.py"))


@needs_espeak
def test_cli_makes_corpus(tmp_path, capsys):
    main = _corpus_script()["main"]
    out = tmp_path / "cli"
    assert main(["--out", str(out), "--speakers", "2", "--splits", *SPLITS, "--utts-per-speaker", "1",
                 "--seed", "3", "--quiet"]) == 0
    rows = load_labels(out)
    assert len(rows) == 6 and {r["split"] for r in rows} == set(SPLITS)
    assert corpus_options(out)["seed"] == 3
    # README.txt's "Regenerate:" command remakes the same corpus
    line = next(x for x in (out / "README.txt").read_text().splitlines() if x.startswith("Regenerate:"))
    again = tmp_path / "again"
    args = line.split("make_synthetic_corpus.py", 1)[1].replace("DIR", str(again)).split()
    assert main([*args, "--quiet"]) == 0
    assert corpus_digest(again) == corpus_digest(out)


def test_cli_default_splits_cover_the_recipes():
    """By default the script writes every split a recipe YAML names (test-other was missing)."""
    counts = _corpus_script()["utts_per_speaker"](None, None)
    named = set()
    for yaml_file in [*REPO_ROOT.glob("hparams/*.yaml"), *REPO_ROOT.glob("recipes/**/*.yaml")]:
        named |= set(re.findall(r"\b(?:train|dev|test)-(?:clean|other)(?:-\d+)?\b", yaml_file.read_text()))
    assert {"test-other", "train-other-500", "dev-clean"} <= named
    assert named <= set(counts)
    assert all(n >= 1 for n in counts.values())
    parse = _corpus_script()["utts_per_speaker"]
    assert parse(["dev-clean"], ["3"]) == {"dev-clean": 3}
    assert parse(None, ["dev-clean=2", "test-other=1"]) == {"dev-clean": 2, "test-other": 1}
    with pytest.raises(ValueError, match="not both"):
        parse(["dev-clean"], ["dev-clean=2"])
    with pytest.raises(ValueError, match="SPLIT=N"):
        parse(None, ["dev-clean=two", "x"])


@needs_espeak
def test_speakers_and_texts():
    speakers = make_speakers(24, seed=0)
    assert len({s.voice for s in speakers}) == 24
    assert Counter(s.gender for s in speakers) == {"male": 12, "female": 12}
    assert len({s.language for s in speakers}) >= 8
    assert [s.voice for s in make_speakers(24, seed=5)] == [s.voice for s in speakers]
    assert len(SCENARIOS) >= 6 and len(STYLES) >= 4
    rng = random.Random(0)
    for scenario in SCENARIOS:
        for _ in range(30):
            spoken, words = make_sentence(scenario, rng)
            assert WORDS_RE.match(words), words
            assert spoken[:-1] == words.lower() and spoken[-1] in ".?"
    plan = plan_corpus(num_speakers=8, utts_per_speaker=8, seed=1)
    for split in SPLITS:
        scen = Counter(u.scenario for u in plan if u.split == split)
        sty = Counter(u.style for u in plan if u.split == split)
        assert set(scen) == set(SCENARIOS) and max(scen.values()) - min(scen.values()) <= 1
        assert set(sty) == set(STYLES) and max(sty.values()) - min(sty.values()) <= 1
    assert len({u.wrd for u in plan}) == len(plan)  # no repeated sentence


@needs_espeak
def test_espeak_worker_protocol_and_errors():
    with EspeakWorker([dict(text="hello.", voice="en"), dict(text="good bye.", voice="en-us+f1")]) as worker:
        assert worker.sample_rate == 22050 and worker.espeak_version
        raw = list(worker.samples())
    assert len(raw) == 2 and all(len(r) > 2 * 0.2 * 22050 and len(r) % 2 == 0 for r in raw)
    with EspeakWorker([dict(text="hello.", voice="en")]) as worker:
        (wav,) = worker.audio(16000)
    assert wav.dtype == np.float32 and abs(len(wav) - len(raw[0]) / 2 * 16000 / 22050) <= 1
    # a job the worker cannot do: the error names the cause from the worker's stderr
    with pytest.raises(EspeakError, match="(?s)stopped after 1 of 2.*Unknown espeak voice variant 'nope'"):
        with EspeakWorker([dict(text="hello.", voice="en"), dict(text="hi.", voice="en+nope")]) as worker:
            list(worker.samples())


@needs_espeak
def test_voices_really_differ():
    text = "SET AN ALARM FOR SEVEN AM TOMORROW"
    speakers = make_speakers(4, seed=1234)
    male, female, male2 = speakers[0], speakers[1], speakers[2]
    assert (male.gender, female.gender, male2.gender) == ("male", "female", "male")
    x_m, x_f, x_m2, x_m_again = speak([(text, male, "neutral", 0), (text, female, "neutral", 0),
                                        (text, male2, "neutral", 0), (text, male, "neutral", 5)])
    assert median_f0(x_f) > 1.4 * median_f0(x_m)
    # two male voices: long-term spectra differ far more than two takes of one voice
    ref = long_term_log_spectrum(x_m)
    same = np.sqrt(np.mean((ref - long_term_log_spectrum(x_m_again)) ** 2))
    other = np.sqrt(np.mean((ref - long_term_log_spectrum(x_m2)) ** 2))
    assert other > 3 * same, (other, same)


@needs_espeak
@pytest.mark.parametrize("index", [0, 1])
def test_styles_prosody_direction(index):
    text = "WHAT IS THE WEATHER LIKE IN LONDON THIS WEEKEND"
    spk = make_speakers(2, seed=1234)[index]
    x = dict(zip(STYLES, speak([(text, spk, style, 0) for style in STYLES])))
    dur = {k: len(v) / 16000 for k, v in x.items()}
    f0 = {k: median_f0(v) for k, v in x.items()}
    loud = {k: rms(v) for k, v in x.items()}
    assert dur["sad"] > 1.15 * dur["neutral"] > 1.15 * dur["happy"]
    assert dur["angry"] < dur["neutral"]
    assert f0["happy"] > 1.1 * f0["neutral"] > 1.1 * f0["sad"]
    assert loud["angry"] > 1.15 * loud["neutral"] > 1.15 * loud["sad"]


# ----------------------------------------------------------------------------- LibriSpeech prep
def test_prepare_real_librispeech(real_librispeech, tmp_path):
    out = prepare_librispeech(real_librispeech, tmp_path / "save", splits=["dev-clean"])
    assert out == {"dev-clean": str(tmp_path / "save" / "dev-clean.csv")}
    rows = read_csv(out["dev-clean"])
    assert list(rows[0].keys()) == ["ID", "duration", "wav", "spk_id", "wrd"]
    expected = {}
    for trans in real_librispeech.glob("dev-clean/*/*/*.trans.txt"):
        for line in trans.read_text().splitlines():
            uid, words = line.split(" ", 1)
            expected[uid] = words
    assert len(expected) == 10
    assert [r["ID"] for r in rows] == sorted(expected)
    for r in rows:
        assert r["wrd"] == expected[r["ID"]]
        assert Path(r["wav"]).is_absolute() and Path(r["wav"]).is_file()
        assert r["spk_id"] == r["ID"].split("-")[0] in ("1001", "1002")
        assert abs(float(r["duration"]) - sf.info(r["wav"]).duration) < 1e-4
        assert 1.5 < float(r["duration"]) < 3.5
    # the two recordings without a transcript are skipped and listed
    skipped = (tmp_path / "save" / "dev-clean_skipped.txt").read_text().splitlines()
    assert sorted(Path(s.split("\t")[0]).stem for s in skipped) == ["1001-2001-0006",
                                                                    "1002-2002-0006"]
    assert all("no transcript" in s for s in skipped)


def test_prepare_accepts_parent_folder(real_librispeech, tmp_path):
    out = prepare_librispeech(real_librispeech.parent, tmp_path, splits=("dev-clean",))
    assert len(read_csv(out["dev-clean"])) == 10


def test_prepare_synthetic_corpus(tiny_corpus, tmp_path):
    out = prepare_librispeech(tiny_corpus, tmp_path)
    labels = {r["ID"]: r for r in load_labels(tiny_corpus)}
    for split in SPLITS:
        rows = read_csv(out[split])
        expected = sorted(i for i, r in labels.items() if r["split"] == split)
        assert [r["ID"] for r in rows] == expected
        for r in rows:
            lab = labels[r["ID"]]
            assert (r["spk_id"], r["wrd"]) == (lab["spk_id"], lab["wrd"])
            assert abs(float(r["duration"]) - lab["duration"]) < 1e-3
        assert (tmp_path / f"{split}_skipped.txt").read_text() == ""


def test_prepare_errors(tmp_path, tiny_corpus):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare_librispeech(tmp_path / "nowhere", tmp_path / "s")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="does not look like LibriSpeech"):
        prepare_librispeech(tmp_path / "junk", tmp_path / "s")
    # one split missing: the error names it and where it was expected
    with pytest.raises(FileNotFoundError, match="test-other"):
        prepare_librispeech(tiny_corpus, tmp_path / "s", splits=("dev-clean", "test-other"))
    empty = tmp_path / "Empty"
    (empty / "dev-clean").mkdir(parents=True)
    with pytest.raises(ValueError, match="no .flac"):
        prepare_librispeech(empty, tmp_path / "s", splits=("dev-clean",))
    # audio but no transcripts at all
    noscript = tmp_path / "NoScript" / "dev-clean" / "1" / "2"
    noscript.mkdir(parents=True)
    sf.write(str(noscript / "1-2-0000.flac"), np.zeros(1600, np.int16), 16000)
    with pytest.raises(ValueError, match="trans.txt"):
        prepare_librispeech(tmp_path / "NoScript", tmp_path / "s", splits=("dev-clean",))


def test_prepare_skips_corrupt_audio(real_librispeech, tmp_path):
    data = tmp_path / "LibriSpeech"
    shutil.copytree(real_librispeech, data)
    chapter = data / "dev-clean" / "1001" / "2001"
    good = chapter / "1001-2001-0001.flac"
    raw = good.read_bytes()
    (chapter / "1001-2001-0007.flac").write_bytes(b"not audio at all" * 100)
    (chapter / "1001-2001-0008.flac").write_bytes(raw[: len(raw) // 2])  # truncated
    (chapter / "1001-2001-0009.flac").write_bytes(b"")
    with open(chapter / "1001-2001.trans.txt", "a") as fh:
        fh.write("1001-2001-0007 GARBAGE\n1001-2001-0008 TRUNCATED\n1001-2001-0009 EMPTY\n")
    out = prepare_librispeech(data, tmp_path / "save", splits=["dev-clean"])
    ids = [r["ID"] for r in read_csv(out["dev-clean"])]
    assert len(ids) == 10 and not {"1001-2001-0007", "1001-2001-0008", "1001-2001-0009"} & set(ids)
    skipped = (tmp_path / "save" / "dev-clean_skipped.txt").read_text().splitlines()
    unreadable = sorted(Path(s.split("\t")[0]).name for s in skipped if "unreadable" in s)
    assert unreadable == ["1001-2001-0007.flac", "1001-2001-0008.flac", "1001-2001-0009.flac"]


def test_prepare_duration_filters_and_reuse(real_librispeech, tmp_path):
    save = tmp_path / "save"
    out = prepare_librispeech(real_librispeech, save, splits=["dev-clean"])
    all_rows = read_csv(out["dev-clean"])
    durations = sorted(float(r["duration"]) for r in all_rows)
    mid = (durations[4] + durations[5]) / 2
    csv_file = save / "dev-clean.csv"
    stamp = csv_file.stat().st_mtime_ns
    # same options: not re-prepared
    prepare_librispeech(real_librispeech, save, splits=["dev-clean"])
    assert csv_file.stat().st_mtime_ns == stamp
    # new options: re-prepared
    rows = read_csv(prepare_librispeech(real_librispeech, save, splits=["dev-clean"],
                                        min_duration=mid)["dev-clean"])
    assert len(rows) == 5 and all(float(r["duration"]) >= mid for r in rows)
    rows = read_csv(prepare_librispeech(real_librispeech, save, splits=["dev-clean"],
                                        max_duration=mid)["dev-clean"])
    assert len(rows) == 5 and all(float(r["duration"]) <= mid for r in rows)
    assert json.loads((save / "dev-clean_prepare.json").read_text())["max_duration"] == mid
    with pytest.raises(ValueError, match="No usable utterance"):
        prepare_librispeech(real_librispeech, save, splits=["dev-clean"], min_duration=100.0)


def test_prepare_rerun_does_not_walk_the_tree(real_librispeech, tmp_path, monkeypatch):
    """A prepared split with the same options is neither walked nor checked again."""
    from brq_att_alt.data import librispeech, manifest

    save = tmp_path / "save"
    out = prepare_librispeech(real_librispeech, save, splits=["dev-clean"])
    stamp = Path(out["dev-clean"]).stat().st_mtime_ns

    def forbidden(*args, **kwargs):
        raise AssertionError("a prepared split was walked or checked again")

    monkeypatch.setattr(librispeech.os, "walk", forbidden)
    monkeypatch.setattr(librispeech, "map_files", forbidden)
    monkeypatch.setattr(manifest.sf, "SoundFile", forbidden)
    assert prepare_librispeech(real_librispeech, save, splits=["dev-clean"]) == out
    assert Path(out["dev-clean"]).stat().st_mtime_ns == stamp
    monkeypatch.undo()
    # other options: walked and written again; same options after a lost marker: same bytes
    before = Path(out["dev-clean"]).read_bytes()
    (save / "dev-clean_prepare.json").unlink()
    prepare_librispeech(real_librispeech, save, splits=["dev-clean"])
    assert Path(out["dev-clean"]).read_bytes() == before


def _write_float_wav(path: Path, data) -> Path:
    """A float32 WAV (the only kind of file that can hold NaN / inf), under any name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(data, dtype=np.float32), 16000, format="WAV", subtype="FLOAT")
    return path


def test_check_audio_file(real_librispeech, tmp_path):
    from brq_att_alt.data.manifest import NON_FINITE, check_audio_file

    good = next(real_librispeech.glob("dev-clean/*/*/*.flac"))
    duration, problem = check_audio_file(good)
    assert problem is None and duration == pytest.approx(sf.info(str(good)).duration)
    wave = 0.1 * np.sin(np.arange(8000) / 10.0)
    assert check_audio_file(_write_float_wav(tmp_path / "ok.wav", wave)) == (0.5, None)
    for bad in (np.nan, np.inf, -np.inf):
        broken = wave.copy()
        broken[7000] = bad
        assert check_audio_file(_write_float_wav(tmp_path / "bad.wav", broken)) == (None, NON_FINITE)
    raw = good.read_bytes()
    (tmp_path / "half.flac").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "junk.flac").write_bytes(b"junk" * 100)
    for name in ("half.flac", "junk.flac", "missing.flac"):
        duration, problem = check_audio_file(tmp_path / name)
        assert duration is None and problem.startswith("unreadable audio")


@pytest.mark.parametrize("workers", [1, 2])
def test_prepare_skips_non_finite_audio_serial_and_parallel(real_librispeech, tmp_path, monkeypatch, workers):
    """NaN / inf samples: left out and listed; the process pool gives the same files as one process."""
    from brq_att_alt.data import manifest

    data = tmp_path / "LibriSpeech"
    shutil.copytree(real_librispeech, data)
    chapter = data / "dev-clean" / "1002" / "2002"
    wave = 0.1 * np.sin(np.arange(24000) / 10.0)
    nan, inf = wave.copy(), wave.copy()
    nan[100], inf[-1] = np.nan, np.inf
    _write_float_wav(chapter / "1002-2002-0007.flac", nan)
    _write_float_wav(chapter / "1002-2002-0008.flac", inf)
    _write_float_wav(chapter / "1002-2002-0009.flac", wave)  # float but finite: kept
    with open(chapter / "1002-2002.trans.txt", "a") as fh:
        fh.write("1002-2002-0007 NOT A NUMBER\n1002-2002-0008 INFINITE\n1002-2002-0009 FINE\n")
    if workers > 1:
        monkeypatch.setattr(manifest, "PARALLEL_MIN_FILES", 0)  # the pool even for a few files
        calls = []
        from speechbrain.utils import parallel

        real_parallel_map = parallel.parallel_map
        monkeypatch.setattr(parallel, "parallel_map",
                            lambda *a, **k: calls.append(k["process_count"]) or real_parallel_map(*a, **k))
    out = prepare_librispeech(data, tmp_path / "save", splits=["dev-clean"], num_workers=workers)
    if workers > 1:
        assert calls == [2]
    ids = [r["ID"] for r in read_csv(out["dev-clean"])]
    assert len(ids) == 11 and "1002-2002-0009" in ids and not {"1002-2002-0007", "1002-2002-0008"} & set(ids)
    skipped = dict(line.split("\t") for line in (tmp_path / "save" / "dev-clean_skipped.txt").read_text().splitlines())
    assert skipped[str((chapter / "1002-2002-0007.flac").resolve())] == "non-finite samples"
    assert skipped[str((chapter / "1002-2002-0008.flac").resolve())] == "non-finite samples"
    assert sum(reason == "no transcript line" for reason in skipped.values()) == 2


def test_merge_manifests(tmp_path):
    from brq_att_alt.data import merge_manifests

    (tmp_path / "a.csv").write_text("ID,duration\na,1.5\n")
    (tmp_path / "b.csv").write_text("ID,duration\nb,2\nc,3\n")
    merged = merge_manifests([tmp_path / "a.csv", tmp_path / "b.csv"], tmp_path / "all.csv")
    assert merged.read_text() == "ID,duration\na,1.5\nb,2\nc,3\n"
    (tmp_path / "c.csv").write_text("ID,wav\nd,x\n")
    with pytest.raises(ValueError, match="columns"):
        merge_manifests([tmp_path / "a.csv", tmp_path / "c.csv"], tmp_path / "bad.csv")


# ----------------------------------------------------------------------------- read_audio
def test_read_audio(tiny_corpus, tmp_path):
    path = sorted(tiny_corpus.glob("dev-clean/*/*/*.flac"))[0]
    ref, _ = sf.read(str(path), dtype="float32")
    wav = read_audio(path)
    assert wav.dtype == torch.float32 and wav.dim() == 1
    assert torch.allclose(wav, torch.from_numpy(ref))
    half = read_audio(path, sample_rate=8000)
    assert abs(half.numel() - ref.shape[0] / 2) <= 1
    # stereo 8 kHz -> mono 16 kHz
    stereo = np.stack([ref[::2], 0.5 * ref[::2]], axis=1)
    sf.write(str(tmp_path / "st.wav"), stereo, 8000)
    mono = read_audio(tmp_path / "st.wav")
    assert mono.dim() == 1 and abs(mono.numel() - 2 * stereo.shape[0]) <= 2
    assert abs(rms(mono.numpy()) - 0.75 * rms(ref)) < 0.1 * rms(ref)
    with pytest.raises(FileNotFoundError, match="missing.flac"):
        read_audio(tmp_path / "missing.flac")
    (tmp_path / "bad.flac").write_bytes(b"garbage" * 50)
    with pytest.raises(AudioReadError, match="bad.flac"):
        read_audio(tmp_path / "bad.flac")
