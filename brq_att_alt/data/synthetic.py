"""A small synthetic speech corpus in the LibriSpeech layout, made with eSpeak NG.

Every utterance is an English sentence built from SLURP-like intent templates
(scenario label), spoken by one of many eSpeak voices (speaker label: an
English accent + a voice variant + a base pitch/range/rate offset) in one of
four prosody styles (emotion-like label). The folder reads like LibriSpeech::

    <out>/<split>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac     16 kHz, 16-bit FLAC
    <out>/<split>/<spk>/<chapter>/<spk>-<chapter>.trans.txt      "ID UPPERCASE WORDS"
    <out>/labels.csv    ID,split,spk_id,voice,gender,scenario,style,duration,wrd
    <out>/README.txt    how it was made

so :func:`brq_att_alt.data.librispeech.prepare_librispeech` prepares it unchanged,
and ``labels.csv`` gives the speaker / intent / emotion-like targets of the
downstream probes.

Reproducibility: texts, labels and voices depend only on the options and the
seed. Audio is synthesised in a fresh worker process (see ``espeak``), with a
per-utterance eSpeak random seed, so it is bit-identical from one run to the
next on the same machine (eSpeak keeps some waveform state between utterances
in a process, which the fresh process resets).
"""

import json
import logging
import random
import shutil
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import soundfile as sf
import torch

from ..csv_files import read_csv, write_csv
from .espeak import EspeakError, EspeakWorker, available_variants
from .manifest import fmt_duration
from .synthetic_text import SCENARIOS, make_sentence

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FORMAT_VERSION = 2  # bump when the generator's output changes for the same options

# LibriSpeech split names this generator knows; the chapter id encodes the split.
KNOWN_SPLITS = (
    "train-clean-100", "dev-clean", "test-clean",
    "train-clean-360", "train-other-500", "dev-other", "test-other",
)
# One split per role (train, dev, test): the splits an int ``utts_per_speaker`` fills.
MINIMAL_SPLITS = ("train-clean-100", "dev-clean", "test-clean")
DEFAULT_NUM_SPEAKERS = 24
# Every LibriSpeech split, so recipes written for the real corpus (960 h pre-training,
# test-other evaluation) run on the synthetic one unchanged.
DEFAULT_UTTS_PER_SPEAKER = {
    "train-clean-100": 16, "train-clean-360": 4, "train-other-500": 4,
    "dev-clean": 4, "dev-other": 2, "test-clean": 4, "test-other": 2,
}
DEFAULT_SEED = 1234
DEFAULT_NOISE_LEVEL = 3e-4  # std of the white noise floor (about -70 dBFS)

LABEL_COLUMNS = ("ID", "split", "spk_id", "voice", "gender", "scenario", "style", "duration", "wrd")
COMPLETE_MARKER = ".synthetic_corpus.json"
INCOMPLETE_MARKER = ".synthetic_corpus.incomplete"

# English accents of eSpeak NG (lang/gmw/en*) and voice variants (voices/!v/*),
# the variants alternating male / female. Speaker i = 8 * q + r uses accent r and
# variant (9 * q + r) % 16: the first 128 speakers are 128 distinct (accent,
# variant) pairs, and every 8 consecutive speakers are 4 male + 4 female.
VOICE_LANGUAGES = (
    "en", "en-us", "en-gb-x-rp", "en-gb-scotland",
    "en-gb-x-gbclan", "en-029", "en-gb-x-gbcwmd", "en-us-nyc",
)
VOICE_VARIANTS = (
    "m1", "f1", "m2", "f2", "m3", "f3", "m4", "f4",
    "m5", "f5", "m6", "linda", "m7", "steph", "m8", "belinda",
)


# ----------------------------------------------------------------------------- prosody
@dataclass(frozen=True)
class Style:
    """Prosody of an emotion-like style, relative to the speaker's base."""

    rate_scale: float  # multiplies the speaker's rate (words per minute)
    pitch_shift: int  # added to the speaker's espeak pitch (0..100)
    range_shift: int  # added to the speaker's espeak pitch range (0..100)
    volume: int  # espeak volume (0..200), absolute
    word_gap: int = 0  # extra pause between words, in 10 ms units


STYLES: Dict[str, Style] = {
    "neutral": Style(rate_scale=1.00, pitch_shift=0, range_shift=0, volume=70),
    "happy": Style(rate_scale=1.05, pitch_shift=18, range_shift=30, volume=85),
    "sad": Style(rate_scale=0.78, pitch_shift=-15, range_shift=-28, volume=50, word_gap=3),
    "angry": Style(rate_scale=1.30, pitch_shift=6, range_shift=10, volume=100),
}


@dataclass(frozen=True)
class Speaker:
    """A synthetic speaker: an eSpeak voice plus a base prosody offset."""

    index: int
    spk_id: str  # numeric, LibriSpeech-like
    language: str  # eSpeak English accent, e.g. "en-gb-x-rp"
    variant: str  # eSpeak voice variant, e.g. "m3"
    gender: str  # "male" / "female" (from the variant file)
    pitch: int  # espeak pitch 0..100 (50 = the variant's own)
    pitch_range: int  # espeak pitch range 0..100
    rate: int  # words per minute

    @property
    def voice(self) -> str:
        return f"{self.language}+{self.variant}"


def make_speakers(num_speakers: int = DEFAULT_NUM_SPEAKERS,
                  seed: int = DEFAULT_SEED) -> List[Speaker]:
    """The speakers of a corpus: voices fixed by index, prosody offsets seeded."""
    if num_speakers < 1:
        raise ValueError(f"num_speakers must be >= 1, got {num_speakers}")
    genders = available_variants()
    missing = [v for v in VOICE_VARIANTS if v not in genders]
    if missing:
        raise EspeakError(f"espeak-ng-data lacks the voice variants {missing}")
    speakers = []
    for i in range(num_speakers):
        rng = random.Random(f"brq-synthetic/{seed}/speaker/{i}")
        language = VOICE_LANGUAGES[i % len(VOICE_LANGUAGES)]
        rnd, pos = divmod(i, len(VOICE_LANGUAGES))
        variant = VOICE_VARIANTS[(9 * rnd + pos) % len(VOICE_VARIANTS)]
        speakers.append(Speaker(
            index=i,
            spk_id=str(101 + i),
            language=language,
            variant=variant,
            gender=genders[variant],
            pitch=50 + rng.randint(-15, 15),
            pitch_range=50 + rng.randint(-12, 12),
            rate=175 + rng.randint(-20, 20),
        ))
    return speakers


def prosody_params(speaker: Speaker, style: str, rng: Optional[random.Random] = None) -> dict:
    """eSpeak parameters for ``speaker`` in ``style``; ``rng`` adds a small jitter."""
    if style not in STYLES:
        raise ValueError(f"Unknown style {style!r}; known: {sorted(STYLES)}")
    st = STYLES[style]
    rate_jitter = rng.uniform(-0.03, 0.03) if rng is not None else 0.0
    pitch_jitter = rng.randint(-3, 3) if rng is not None else 0
    return {
        "voice": speaker.voice,
        "rate": int(round(speaker.rate * st.rate_scale * (1.0 + rate_jitter))),
        "pitch": int(min(max(speaker.pitch + st.pitch_shift + pitch_jitter, 0), 100)),
        "pitch_range": int(min(max(speaker.pitch_range + st.range_shift, 0), 100)),
        "volume": st.volume,
        "word_gap": st.word_gap,
    }


def _balanced(labels: Sequence[str], n: int, rng: random.Random) -> List[str]:
    out = [labels[k % len(labels)] for k in range(n)]
    rng.shuffle(out)
    return out


@dataclass
class Utterance:
    ID: str
    split: str
    speaker: Speaker
    chapter: str
    scenario: str
    style: str
    text: str  # what eSpeak reads
    wrd: str  # transcript
    params: dict  # eSpeak parameters
    espeak_seed: int
    noise_seed: int
    lead_silence: float  # seconds of noise floor before the speech


def plan_corpus(num_speakers: int = DEFAULT_NUM_SPEAKERS,
                utts_per_speaker: Optional[Union[int, Mapping[str, int]]] = None,
                seed: int = DEFAULT_SEED) -> List[Utterance]:
    """Everything about the corpus except the audio, as a pure function of the options."""
    counts = _normalise_counts(utts_per_speaker)
    speakers = make_speakers(num_speakers, seed)
    scenarios = sorted(SCENARIOS)
    styles = list(STYLES)
    used_texts = set()
    plan = []
    for split, per_spk in counts.items():
        rng = random.Random(f"brq-synthetic/{seed}/{split}/texts")
        n = num_speakers * per_spk
        scen = _balanced(scenarios, n, rng)
        sty = _balanced(styles, n, rng)
        chapter_suffix = KNOWN_SPLITS.index(split) + 1
        for k in range(n):
            spk = speakers[k // per_spk]
            utt = k % per_spk
            for _attempt in range(50):  # avoid repeated sentences in the corpus
                text, wrd = make_sentence(scen[k], rng)
                if wrd not in used_texts:
                    break
            used_texts.add(wrd)
            chapter = f"{spk.spk_id}{chapter_suffix:02d}"
            uid = f"{spk.spk_id}-{chapter}-{utt:04d}"
            urng = random.Random(f"brq-synthetic/{seed}/utt/{uid}")
            plan.append(Utterance(
                ID=uid, split=split, speaker=spk, chapter=chapter, scenario=scen[k],
                style=sty[k], text=text, wrd=wrd, params=prosody_params(spk, sty[k], urng),
                espeak_seed=zlib.crc32(f"{seed}/{uid}/espeak".encode()) & 0x7FFFFFFF,
                noise_seed=zlib.crc32(f"{seed}/{uid}/noise".encode()),
                lead_silence=round(urng.uniform(0.10, 0.30), 3),
            ))
    return plan


def _normalise_counts(utts_per_speaker) -> Dict[str, int]:
    if utts_per_speaker is None:
        utts_per_speaker = DEFAULT_UTTS_PER_SPEAKER
    if isinstance(utts_per_speaker, int):
        utts_per_speaker = {s: utts_per_speaker for s in MINIMAL_SPLITS}
    counts = {}
    for split in KNOWN_SPLITS:  # canonical order
        if split in utts_per_speaker:
            n = int(utts_per_speaker[split])
            if n < 1:
                raise ValueError(f"utts_per_speaker[{split!r}] must be >= 1, got {n}")
            counts[split] = n
    unknown = sorted(set(utts_per_speaker) - set(KNOWN_SPLITS))
    if unknown:
        raise ValueError(f"Unknown split names {unknown}; use LibriSpeech names {KNOWN_SPLITS}")
    if not counts:
        raise ValueError("utts_per_speaker names no split")
    return counts


# ----------------------------------------------------------------------------- audio
def _finish_audio(wav: np.ndarray, lead_silence: float, noise_seed: int, noise_level: float) -> np.ndarray:
    """float32 speech at 16 kHz -> int16 with ``lead_silence`` seconds before it and a
    seeded white noise floor of std ``noise_level`` (full scale 1) over the whole file."""
    y = np.concatenate([np.zeros(int(round(lead_silence * SAMPLE_RATE)), np.float32), wav])
    if noise_level > 0:
        noise = np.random.default_rng(noise_seed).standard_normal(len(y)).astype(np.float32)
        y = y + noise_level * noise
    return np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)


# ----------------------------------------------------------------------------- corpus
def _options(num_speakers, counts, seed, noise_level) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "num_speakers": int(num_speakers),
        "utts_per_speaker": dict(counts),
        "seed": int(seed),
        "sample_rate": SAMPLE_RATE,
        "noise_level": float(noise_level),
    }


def _read_marker(out: Path) -> Optional[dict]:
    try:
        return json.loads((out / COMPLETE_MARKER).read_text())
    except (OSError, ValueError):
        return None


def _remove_outputs(out: Path, splits: Iterable[str]):
    for split in set(splits) | set(KNOWN_SPLITS):
        if (out / split).is_dir():
            shutil.rmtree(out / split)
    for name in ("labels.csv", "README.txt", COMPLETE_MARKER):
        if (out / name).exists():
            (out / name).unlink()


def make_synthetic_corpus(out_dir: Union[str, Path],
                          num_speakers: int = DEFAULT_NUM_SPEAKERS,
                          utts_per_speaker: Optional[Union[int, Mapping[str, int]]] = None,
                          seed: int = DEFAULT_SEED,
                          overwrite: bool = False,
                          noise_level: float = DEFAULT_NOISE_LEVEL) -> Path:
    """Write (or find) a synthetic LibriSpeech-layout corpus in ``out_dir``.

    Arguments
    ---------
    out_dir: folder of the corpus (created).
    num_speakers: number of voices; every split has every speaker.
    utts_per_speaker: utterances per speaker for each split, e.g.
        ``{"train-clean-100": 2, "dev-clean": 2, "test-clean": 2}``, or one int for
        the three ``MINIMAL_SPLITS``; default ``DEFAULT_UTTS_PER_SPEAKER`` (all seven
        LibriSpeech splits).
    seed: seeds texts, labels, prosody, eSpeak's noise and the noise floor.
    overwrite: regenerate even when a finished corpus with these options exists,
        or replace a finished corpus made with other options (otherwise an error).
    noise_level: standard deviation of a white noise floor added to the audio
        (full scale = 1); 0 for none.

    Returns the corpus folder. A finished corpus made with the same options is
    returned at once; a half-written one (killed run) is regenerated. In
    multi-process (DDP) runs call it through ``run_on_main``.
    """
    out = Path(out_dir).expanduser().resolve()
    counts = _normalise_counts(utts_per_speaker)
    if noise_level < 0:
        raise ValueError(f"noise_level must be >= 0, got {noise_level}")
    options = _options(num_speakers, counts, seed, noise_level)

    marker = _read_marker(out)
    if marker is not None and not (out / INCOMPLETE_MARKER).exists():
        if marker.get("options") == options and not overwrite:
            logger.info("Synthetic corpus already in %s (%s)", out, options)
            return out
        if marker.get("options") != options and not overwrite:
            raise FileExistsError(
                f"{out} holds a synthetic corpus made with other options "
                f"({marker.get('options')}); asked for {options}. Pass overwrite=True "
                "to replace it, or choose another folder."
            )
    elif (out / INCOMPLETE_MARKER).exists():
        logger.warning("Regenerating the half-written synthetic corpus in %s", out)
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out} is not empty and is not a synthetic corpus (no {COMPLETE_MARKER}); "
            "choose an empty folder or pass overwrite=True (only the split folders, "
            "labels.csv and README.txt are replaced)."
        )

    start = time.perf_counter()
    plan = plan_corpus(num_speakers, counts, seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / INCOMPLETE_MARKER).write_text(json.dumps(options))
    _remove_outputs(out, counts)

    jobs = [dict(text=u.text, seed=u.espeak_seed, **u.params) for u in plan]
    durations: Dict[str, float] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: threads only add overhead
    try:
        with EspeakWorker(jobs) as worker:
            engine_version = worker.espeak_version
            # the worker's audio first: its end (exit status checked) stops the loop
            for wav, utt in zip(worker.audio(SAMPLE_RATE), plan):
                audio = _finish_audio(wav, utt.lead_silence, utt.noise_seed, noise_level)
                folder = out / utt.split / utt.speaker.spk_id / utt.chapter
                folder.mkdir(parents=True, exist_ok=True)
                sf.write(str(folder / f"{utt.ID}.flac"), audio, SAMPLE_RATE, format="FLAC",
                         subtype="PCM_16")
                durations[utt.ID] = len(audio) / SAMPLE_RATE
    finally:
        torch.set_num_threads(threads)

    by_chapter: Dict[Tuple[str, str, str], List[Utterance]] = {}
    for utt in plan:
        by_chapter.setdefault((utt.split, utt.speaker.spk_id, utt.chapter), []).append(utt)
    for (split, spk, chapter), utts in by_chapter.items():
        lines = "".join(f"{u.ID} {u.wrd}\n" for u in sorted(utts, key=lambda u: u.ID))
        (out / split / spk / chapter / f"{spk}-{chapter}.trans.txt").write_text(lines)

    write_csv(out / "labels.csv", LABEL_COLUMNS, (
        dict(ID=u.ID, split=u.split, spk_id=u.speaker.spk_id, voice=u.speaker.voice, gender=u.speaker.gender,
             scenario=u.scenario, style=u.style, duration=fmt_duration(durations[u.ID]), wrd=u.wrd)
        for u in plan))

    total = sum(durations.values())
    (out / "README.txt").write_text(_readme(options, plan, total, engine_version))
    (out / COMPLETE_MARKER).write_text(json.dumps({
        "options": options,
        "num_utterances": len(plan),
        "total_seconds": round(total, 3),
        "espeak_ng_version": engine_version,
    }, indent=2))
    (out / INCOMPLETE_MARKER).unlink()
    logger.info("Synthetic corpus: %d utterances, %.1f min of audio in %.1f s -> %s",
                len(plan), total / 60, time.perf_counter() - start, out)
    return out


def ensure_synthetic_corpus(out_dir: Union[str, Path], options: Optional[Mapping] = None) -> Path:
    """The synthetic corpus of a recipe whose YAML says ``dataset: synthetic``.

    A finished corpus in ``out_dir`` is used as it is: if it was made with other options
    than ``options`` (the YAML's ``synthetic_corpus_options``, ``make_synthetic_corpus``
    arguments), a warning names both. Otherwise the corpus is made there with ``options``
    (a half-written one is regenerated). Returns the corpus folder.
    """
    options = dict(options or {})
    out = Path(out_dir).expanduser().resolve()
    marker = _read_marker(out)
    if marker is None and out.is_dir() and any(out.iterdir()) and not (out / INCOMPLETE_MARKER).exists():
        raise FileExistsError(
            f"dataset is synthetic but {out} holds no synthetic corpus (no {COMPLETE_MARKER}) and is not "
            "empty: for a real dataset in that folder pass --dataset=real; for the synthetic corpus pass "
            "an empty or new --data_folder."
        )
    if marker is None or (out / INCOMPLETE_MARKER).exists():
        logger.info("Generating the synthetic corpus in %s", out)
        return make_synthetic_corpus(out, **options)
    asked = _options(options.get("num_speakers", DEFAULT_NUM_SPEAKERS), _normalise_counts(options.get(
        "utts_per_speaker")), options.get("seed", DEFAULT_SEED), options.get("noise_level", DEFAULT_NOISE_LEVEL))
    if marker.get("options") != asked:
        logger.warning("Using the synthetic corpus in %s as it is: made with %s, while synthetic_corpus_options "
                       "asks for %s (delete the folder, or pass another data_folder, to make that one).",
                       out, marker.get("options"), asked)
    return out


def _readme(options: dict, plan: List[Utterance], total: float, version: str) -> str:
    speakers = {u.speaker.spk_id: u.speaker for u in plan}
    lines = [
        "Synthetic speech corpus (LibriSpeech layout) made by brq_att_alt.data.synthetic",
        "",
        "Made with eSpeak NG " + version + " (libespeak-ng from the espeakng-loader wheel,",
        "synchronous retrieval mode, 22.05 kHz int16), resampled to 16 kHz with torchaudio's",
        "windowed-sinc resampler, written as 16-bit mono FLAC.",
        f"Each file starts with 0.10-0.30 s of silence; a white noise floor of std "
        f"{options['noise_level']} (full scale 1) is added.",
        "",
        "Options: " + json.dumps(options),
        f"Regenerate: python scripts/make_synthetic_corpus.py --out DIR --speakers {options['num_speakers']} "
        "--utts-per-speaker " + " ".join(f"{k}={v}" for k, v in options["utts_per_speaker"].items())
        + f" --seed {options['seed']} --noise-level {options['noise_level']}",
        f"Utterances: {len(plan)}; audio: {total / 60:.2f} min",
        "",
        "Texts: English sentences from SLURP-like intent templates with slot fillers;",
        "scenario labels: " + ", ".join(sorted(SCENARIOS)) + " (balanced in each split).",
        "Transcripts are upper-case words without punctuation.",
        "",
        "Styles (emotion-like labels, balanced in each split), relative to the speaker:",
    ]
    for name, st in STYLES.items():
        lines.append(f"  {name:8s} rate x{st.rate_scale:.2f}, pitch {st.pitch_shift:+d}, "
                     f"range {st.range_shift:+d}, volume {st.volume}, "
                     f"word gap {st.word_gap * 10} ms")
    lines += [
        "  (per utterance jitter: rate +-3 %, pitch +-3 espeak units)",
        "",
        "Speakers (every split has every speaker): spk_id voice gender pitch range rate",
    ]
    for spk in speakers.values():
        lines.append(f"  {spk.spk_id} {spk.voice} {spk.gender} {spk.pitch} "
                     f"{spk.pitch_range} {spk.rate}")
    lines += [
        "",
        "Files: <split>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac and <spk>-<chapter>.trans.txt;",
        "labels.csv: ID,split,spk_id,voice,gender,scenario,style,duration,wrd.",
        "Same options and seed -> same texts, labels and voices; audio bit-identical on the",
        "same machine (synthesis runs in a fresh process with per-utterance eSpeak seeds).",
        "",
    ]
    return "\n".join(lines)


def load_labels(corpus_dir: Union[str, Path]) -> List[dict]:
    """Rows of ``<corpus_dir>/labels.csv`` (duration as float); a clear error when absent."""
    labels = Path(corpus_dir) / "labels.csv"
    if not labels.is_file():
        raise FileNotFoundError(
            f"{labels} not found: {corpus_dir} is not a synthetic corpus (expected labels.csv and "
            "<split>/<spk>/<chapter>/<ID>.flac, as written by make_synthetic_corpus)."
        )
    rows = read_csv(labels)
    for row in rows:
        row["duration"] = float(row["duration"])
    return rows
