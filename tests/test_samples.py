"""The real recordings ship with the repository, and nothing reads a path outside it."""

import csv
import re

import soundfile as sf

from helpers import REAL_SPEECH, REPO_ROOT, load_script


def test_real_speech_samples_are_in_the_repository():
    assert REAL_SPEECH.is_relative_to(REPO_ROOT)
    wavs = sorted(REAL_SPEECH.glob("*.wav"))
    assert [w.stem for w in wavs] == [f"spk{s}_snt{n}" for s in (1, 2) for n in range(1, 7)]
    for wav in wavs:
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert 1.5 < info.duration < 3.5
    with open(REAL_SPEECH / "transcripts.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 10 and {r["ID"] for r in rows} <= {w.stem for w in wavs}
    assert all(r["wrd"] and r["wrd"] == r["wrd"].upper() for r in rows)
    assert "Apache" in (REAL_SPEECH / "README.md").read_text()


def test_demo_reads_the_in_repository_recordings():
    demo = load_script(REPO_ROOT / "scripts" / "demo_encoders.py")
    assert demo.DEFAULT_AUDIO == REAL_SPEECH
    batch, wav_lens, seconds = demo.load_batch(demo.DEFAULT_AUDIO)
    assert batch.shape[0] == 12 and wav_lens.max() == 1.0 and 25 < seconds < 30


def test_no_code_reads_outside_the_repository():
    """No source, test, script or doc points at the development machine's ../shared folder."""
    pattern = re.compile(r"""(\.\./shared|["']shared["']\s*/|parents\[2\]\s*/)""")
    offenders = []
    for folder in ("brq_att_alt", "recipes", "scripts", "tests", "docs", "hparams"):
        for path in (REPO_ROOT / folder).rglob("*"):
            if path.suffix in {".py", ".sh", ".md", ".yaml", ".sbatch", ".txt"} and path.is_file():
                for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                    if pattern.search(line) and path.name != "test_samples.py":
                        offenders.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    for name in ("README.md", "train.py", "pyproject.toml"):
        text = (REPO_ROOT / name).read_text()
        offenders += [f"{name}: {m.group(0)}" for m in pattern.finditer(text)]
    assert not offenders, "\n".join(offenders)
