"""Shared pytest fixtures.

Data fixtures (session-scoped, made once per test session):

- ``tiny_corpus``: a synthetic eSpeak corpus in the LibriSpeech layout (4
  speakers, 2 utterances per speaker in train-clean-100, dev-clean and
  test-clean, seed 1234): ``<root>/<split>/<spk>/<chapter>/*.flac`` + trans.txt,
  ``<root>/labels.csv`` (ID,split,spk_id,voice,gender,scenario,style,duration,wrd).
- ``tiny_pretrained``: the save folder of a pre-training run (``brq_model.json`` +
  ``CKPT+exported/model.ckpt``) holding a random MHSA ``BestRQModel`` of ``helpers.TINY_MODEL``.
- ``mp3s_recipes``: ``run_recipe(task, probe, output, pretrained, data_folder, *overrides)``
  runs the MP3S recipe ``recipes/MP3S/<task>/<probe>`` (its entry point's ``main``) in this
  process, with 1 epoch and batches of 4 unless the overrides say otherwise.
- ``real_speech``: the folder of the 12 real recordings of tests/samples/real_speech.
- ``real_librispeech``: the 12 real recordings of tests/samples/real_speech
  laid out as ``<tmp>/LibriSpeech/dev-clean/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac``
  (speakers 1001 and 1002, chapters 2001 and 2002); the two files without a
  transcript (utterance 0006) have no trans.txt line. The recordings ship with the
  repository: if they are missing, the fixture fails (never skips).
"""

import csv
from pathlib import Path

import pytest
import torch

from helpers import MP3S, REAL_SPEECH, TINY_MODEL, load_script, save_run

TINY_CORPUS_OPTIONS = {
    "num_speakers": 4,
    "utts_per_speaker": {"train-clean-100": 2, "dev-clean": 2, "test-clean": 2},
    "seed": 1234,
}


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """Root folder of a tiny synthetic LibriSpeech-layout corpus (see module doc)."""
    pytest.importorskip("espeakng_loader", reason="the synthetic corpus needs espeakng-loader")
    from brq_att_alt.data.synthetic import make_synthetic_corpus

    return make_synthetic_corpus(tmp_path_factory.mktemp("tiny_corpus") / "corpus",
                                 **TINY_CORPUS_OPTIONS)


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory) -> Path:
    from brq_att_alt.model import BestRQModel

    torch.manual_seed(0)
    return save_run(BestRQModel("mhsa", **TINY_MODEL), tmp_path_factory.mktemp("tiny_pretrained") / "save")


@pytest.fixture(scope="session")
def mp3s_recipes():
    entry_points = {}

    def run_recipe(task, probe, output, pretrained, data_folder, *overrides):
        if task not in entry_points:
            entry_points[task] = load_script(MP3S / task / "train.py")
        yaml = MP3S / task / probe / "hparams" / f"{probe}.yaml"
        given = {o.split("=", 1)[0] for o in overrides}
        defaults = [d for d in ("--number_of_epochs=1", "--batch_size=4") if d.split("=", 1)[0] not in given]
        argv = [str(yaml), f"--pretrained_path={pretrained}", f"--output_folder={output}",
                f"--data_folder={data_folder}", *defaults, *overrides]
        return entry_points[task].main(argv)

    return run_recipe


@pytest.fixture(scope="session")
def real_speech() -> Path:
    """``tests/samples/real_speech``: 12 real recordings + transcripts.csv (the test fails if missing)."""
    return real_speech_dir()


def real_speech_dir() -> Path:
    """The in-repository real recordings; fails the test if they are missing."""
    if not (REAL_SPEECH / "transcripts.csv").is_file() or len(list(REAL_SPEECH.glob("*.wav"))) != 12:
        pytest.fail(f"the 12 real recordings and transcripts.csv must be in {REAL_SPEECH} "
                    "(they ship with the repository; restore them with git checkout)")
    return REAL_SPEECH


@pytest.fixture(scope="session")
def real_librispeech(tmp_path_factory) -> Path:
    """``<tmp>/LibriSpeech`` holding dev-clean made of the real test recordings."""
    import soundfile as sf

    source = real_speech_dir()
    with open(source / "transcripts.csv", newline="") as fh:
        texts = {row["ID"]: row["wrd"] for row in csv.DictReader(fh)}
    root = tmp_path_factory.mktemp("real_librispeech") / "LibriSpeech"
    lines = {}
    for wav in sorted(source.glob("*.wav")):
        spk_name, snt = wav.stem.split("_")  # spk1_snt3
        n = int(spk_name[3:])
        spk, chapter = str(1000 + n), str(2000 + n)
        uid = f"{spk}-{chapter}-{int(snt[3:]):04d}"
        folder = root / "dev-clean" / spk / chapter
        folder.mkdir(parents=True, exist_ok=True)
        data, rate = sf.read(str(wav), dtype="int16")
        sf.write(str(folder / f"{uid}.flac"), data, rate, format="FLAC", subtype="PCM_16")
        lines.setdefault(folder / f"{spk}-{chapter}.trans.txt", [])
        if wav.stem in texts:
            lines[folder / f"{spk}-{chapter}.trans.txt"].append(f"{uid} {texts[wav.stem]}\n")
    for path, content in lines.items():
        path.write_text("".join(sorted(content)))
    return root


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test models gain nothing from intra-op threads, and on a shared 2-core
    machine two threads per process made them an order of magnitude slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
