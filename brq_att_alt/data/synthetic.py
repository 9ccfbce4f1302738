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
seed. Audio is synthesised in a fresh worker process (see ``espeak_tts``), with a
per-utterance eSpeak random seed, so it is bit-identical from one run to the
next on the same machine (eSpeak keeps some waveform state between utterances
in a process, which the fresh process resets).
"""

import csv
import json
import logging
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import soundfile as sf
import torch
import torchaudio

from . import espeak_tts

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FORMAT_VERSION = 1  # bump when the generator's output changes for the same options

# LibriSpeech split names this generator knows; the chapter id encodes the split.
KNOWN_SPLITS = (
    "train-clean-100", "dev-clean", "test-clean",
    "train-clean-360", "train-other-500", "dev-other", "test-other",
)
DEFAULT_SPLITS = ("train-clean-100", "dev-clean", "test-clean")
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
    "happy": Style(rate_scale=1.12, pitch_shift=16, range_shift=25, volume=82),
    "sad": Style(rate_scale=0.80, pitch_shift=-14, range_shift=-22, volume=48, word_gap=2),
    "angry": Style(rate_scale=1.15, pitch_shift=6, range_shift=8, volume=100),
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
    genders = espeak_tts.available_variants()
    missing = [v for v in VOICE_VARIANTS if v not in genders]
    if missing:
        raise espeak_tts.EspeakError(f"espeak-ng-data lacks the voice variants {missing}")
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
            pitch=50 + rng.randint(-10, 10),
            pitch_range=50 + rng.randint(-10, 10),
            rate=175 + rng.randint(-15, 15),
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


# ----------------------------------------------------------------------------- texts
# Templates end with "?" for questions (spoken with a question intonation; the
# transcript has no punctuation). Slots in braces are filled from SLOTS.
SCENARIOS: Dict[str, Tuple[str, ...]] = {
    "alarm": (
        "SET AN ALARM FOR {time} {day}", "WAKE ME UP AT {time} {day}",
        "SET AN ALARM FOR {time}", "CANCEL MY {time} ALARM",
        "REMOVE THE ALARM FOR {day}", "WHAT ALARMS DO I HAVE {day}?",
        "SNOOZE THE ALARM FOR {minutes} MINUTES", "IS MY ALARM SET FOR {time}?",
        "CHANGE MY ALARM TO {time}",
    ),
    "weather": (
        "WHAT IS THE WEATHER LIKE IN {city} {day}?", "WILL IT RAIN {day}?",
        "DO I NEED AN UMBRELLA {day}?", "HOW HOT WILL IT BE IN {city} {day}?",
        "IS IT GOING TO SNOW IN {city}?", "TELL ME THE FORECAST FOR {city}",
        "HOW COLD IS IT OUTSIDE RIGHT NOW?", "WILL IT BE SUNNY IN {city} {day}?",
    ),
    "music": (
        "PLAY SOME {genre} MUSIC", "PLAY SOME {genre} IN THE {room}",
        "PUT ON MY {playlist} PLAYLIST", "SKIP THIS SONG", "TURN THE MUSIC UP A LITTLE",
        "WHO SINGS THIS SONG?", "SHUFFLE MY {playlist} PLAYLIST",
        "PLAY THE LATEST ALBUM BY {artist}", "PLAY SOMETHING BY {artist}",
    ),
    "calendar": (
        "ADD A MEETING WITH {person} {day} AT {time}", "WHAT IS ON MY CALENDAR {day}?",
        "REMIND ME TO {task} {day}", "CANCEL MY {event} {day}",
        "WHEN IS MY NEXT {event}?", "SCHEDULE A {event} WITH {person} {day}",
        "DO I HAVE ANYTHING PLANNED {day}?", "MOVE MY {event} TO {time}",
    ),
    "iot": (
        "TURN {onoff} THE LIGHTS IN THE {room}", "DIM THE LIGHTS IN THE {room}",
        "MAKE THE LIGHTS {colour}", "SET THE THERMOSTAT TO {degrees} DEGREES",
        "TURN {onoff} THE {device}", "SWITCH {onoff} THE {device} IN THE {room}",
        "MAKE IT BRIGHTER IN THE {room}", "START THE ROBOT VACUUM IN THE {room}",
        "IS THE {device} STILL ON?", "LOCK THE FRONT DOOR",
    ),
    "transport": (
        "BOOK A TAXI TO {place} AT {time}", "WHEN IS THE NEXT TRAIN TO {city}?",
        "HOW LONG DOES IT TAKE TO DRIVE TO {place}?",
        "IS THERE MUCH TRAFFIC ON THE WAY TO {place}?", "GET ME A TRAIN TICKET TO {city} {day}",
        "WHAT TIME DOES THE LAST BUS TO {place} LEAVE?", "ORDER A CAB TO {place}",
        "FIND ME A FLIGHT TO {city} {day}",
    ),
    "cooking": (
        "HOW DO I MAKE {dish}?", "GIVE ME A RECIPE FOR {dish}",
        "HOW LONG SHOULD I BOIL {food}?", "WHAT CAN I COOK WITH {ingredient} AND {ingredient2}?",
        "HOW MANY GRAMS OF {baking} ARE IN A CUP?", "FIND ME A QUICK {meal} RECIPE",
        "WHAT TEMPERATURE SHOULD I BAKE {dish} AT?", "I NEED A RECIPE WITH {ingredient}",
    ),
    "email": (
        "SEND AN EMAIL TO {person} ABOUT {topic}", "DO I HAVE ANY NEW EMAILS?",
        "READ MY LATEST EMAIL FROM {person}", "REPLY TO {person} AND SAY {reply}",
        "CHECK MY INBOX FOR MESSAGES FROM {person}", "DELETE ALL EMAILS FROM {sender}",
        "FORWARD THE LAST EMAIL TO {person}", "WRITE AN EMAIL TO {person} SAYING {reply}",
    ),
}

SLOTS: Dict[str, Tuple[str, ...]] = {
    "time": (
        "SEVEN AM", "SIX THIRTY IN THE MORNING", "HALF PAST EIGHT", "NINE FIFTEEN",
        "TEN PM", "QUARTER TO SEVEN", "NOON", "FIVE FORTY FIVE", "ELEVEN O CLOCK",
        "MIDNIGHT", "TWO IN THE AFTERNOON", "EIGHT TONIGHT", "FOUR THIRTY",
    ),
    "day": (
        "TOMORROW", "ON MONDAY", "ON TUESDAY", "ON WEDNESDAY", "ON THURSDAY", "ON FRIDAY",
        "ON SATURDAY", "ON SUNDAY", "THIS WEEKEND", "TONIGHT", "NEXT WEEK", "THIS EVENING",
        "TODAY", "ON SUNDAY MORNING",
    ),
    "minutes": ("FIVE", "TEN", "FIFTEEN", "TWENTY", "THIRTY", "FORTY FIVE"),
    "city": (
        "LONDON", "PARIS", "BOSTON", "CHICAGO", "MADRID", "TOKYO", "BERLIN", "DUBLIN",
        "SYDNEY", "TORONTO", "SEATTLE", "EDINBURGH", "ROME", "DENVER", "GLASGOW", "MIAMI",
    ),
    "genre": (
        "JAZZ", "ROCK", "CLASSICAL", "POP", "COUNTRY", "BLUES", "REGGAE", "FOLK",
        "HIP HOP", "ELECTRONIC", "SOUL", "OPERA",
    ),
    "playlist": (
        "WORKOUT", "MORNING", "DINNER", "ROAD TRIP", "STUDY", "PARTY", "RELAXING", "SUMMER",
    ),
    "artist": (
        "THE BEATLES", "ADELE", "QUEEN", "MADONNA", "COLDPLAY", "BOB DYLAN", "ELTON JOHN",
        "THE ROLLING STONES", "NINA SIMONE", "BRUCE SPRINGSTEEN", "TAYLOR SWIFT",
    ),
    "room": (
        "KITCHEN", "LIVING ROOM", "BEDROOM", "BATHROOM", "OFFICE", "GARAGE", "HALLWAY",
        "DINING ROOM", "GARDEN", "BASEMENT",
    ),
    "person": (
        "JOHN", "SARAH", "MY MANAGER", "EMMA", "DAVID", "MY SISTER", "THE TEAM", "PETER",
        "LUCY", "MY MOTHER", "MY BROTHER", "JAMES", "ANNA", "MICHAEL",
    ),
    "task": (
        "CALL THE BANK", "BUY MILK", "PAY THE RENT", "WATER THE PLANTS", "BOOK A TABLE",
        "SEND THE REPORT", "PICK UP THE KIDS", "RENEW MY PASSPORT", "TAKE OUT THE BINS",
        "FEED THE CAT",
    ),
    "event": (
        "MEETING", "APPOINTMENT", "DENTIST APPOINTMENT", "LUNCH", "CONFERENCE CALL",
        "DOCTOR APPOINTMENT", "BIRTHDAY PARTY", "INTERVIEW", "YOGA CLASS",
    ),
    "onoff": ("ON", "OFF"),
    "colour": ("RED", "BLUE", "GREEN", "WARM WHITE", "PURPLE", "YELLOW", "ORANGE", "PINK"),
    "degrees": (
        "SIXTEEN", "SEVENTEEN", "EIGHTEEN", "NINETEEN", "TWENTY", "TWENTY ONE",
        "TWENTY TWO", "TWENTY THREE", "SEVENTY", "SEVENTY TWO",
    ),
    "device": (
        "HEATER", "FAN", "COFFEE MACHINE", "TELEVISION", "AIR CONDITIONER", "DISHWASHER",
        "WASHING MACHINE", "KETTLE", "RADIO", "OVEN",
    ),
    "place": (
        "THE AIRPORT", "THE STATION", "WORK", "THE OFFICE", "THE TOWN CENTRE",
        "THE HOSPITAL", "THE MUSEUM", "THE STADIUM", "THE BEACH", "MY HOTEL",
        "THE UNIVERSITY", "THE SHOPPING MALL",
    ),
    "dish": (
        "PANCAKES", "LASAGNA", "CHICKEN CURRY", "TOMATO SOUP", "BANANA BREAD", "FRIED RICE",
        "APPLE PIE", "VEGETABLE STEW", "CHOCOLATE CAKE", "FISH PIE", "POTATO SALAD",
    ),
    "food": ("AN EGG", "PASTA", "POTATOES", "RICE", "BROCCOLI", "CARROTS", "CORN", "PEAS"),
    "ingredient": (
        "CHICKEN", "MUSHROOMS", "SPINACH", "BEANS", "EGGS", "TOMATOES", "ONIONS", "CHEESE",
        "LEMONS", "GARLIC",
    ),
    "baking": ("FLOUR", "SUGAR", "BUTTER", "RICE", "OATS", "COCOA"),
    "meal": ("BREAKFAST", "LUNCH", "DINNER", "VEGETARIAN", "DESSERT", "SOUP"),
    "topic": (
        "THE MEETING", "THE PROJECT", "THE PARTY ON SATURDAY", "THE BUDGET", "DINNER PLANS",
        "THE HOLIDAY", "THE REPORT", "THE NEW CONTRACT", "THE TRIP",
    ),
    "reply": (
        "I WILL BE LATE", "SEE YOU TOMORROW", "THANKS FOR THE UPDATE", "SOUNDS GOOD TO ME",
        "I CANNOT MAKE IT TODAY", "LET US TALK ON MONDAY",
    ),
    "sender": ("THE BANK", "THE NEWSLETTER", "MY LANDLORD", "THE SCHOOL", "THE GYM"),
}
SLOTS["ingredient2"] = SLOTS["ingredient"]

PREFIXES = ("HEY", "OKAY", "EXCUSE ME")
POLITE = "PLEASE"
_SLOT_RE = re.compile(r"\{(\w+)\}")
_WORDS_RE = re.compile(r"^[A-Z]+( [A-Z]+)*$")


def make_sentence(scenario: str, rng: random.Random) -> Tuple[str, str]:
    """One sentence of ``scenario``: (text to speak, transcript).

    The transcript is upper case words separated by single spaces; the spoken
    text is the same in lower case, ended by "." or "?".
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"Unknown scenario {scenario!r}; known: {sorted(SCENARIOS)}")
    template = rng.choice(SCENARIOS[scenario])
    question = template.endswith("?")
    template = template.rstrip("?")
    chosen: Dict[str, str] = {}

    def fill(match):
        slot = match.group(1)
        options = [o for o in SLOTS[slot] if o not in chosen.values()]
        chosen[slot] = rng.choice(options)
        return chosen[slot]

    words = _SLOT_RE.sub(fill, template)
    draw = rng.random()
    if draw < 0.12:
        words = f"{rng.choice(PREFIXES)} {words}"
    elif draw < 0.22 and not question:
        words = f"{POLITE} {words}" if rng.random() < 0.5 else f"{words} {POLITE}"
    words = " ".join(words.split())
    if not _WORDS_RE.match(words):  # a bad template or slot filler
        raise AssertionError(f"Not a clean transcript: {words!r}")
    return words.lower() + ("?" if question else "."), words


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
        utts_per_speaker = {s: utts_per_speaker for s in DEFAULT_SPLITS}
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
@lru_cache(maxsize=4)
def _resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    # torchaudio's windowed-sinc resampling (torchaudio.functional.resample) with
    # the kernel computed once.
    return torchaudio.transforms.Resample(orig, new)


def _to_16k(raw: bytes, orig_rate: int, lead_silence: float, noise_seed: int,
            noise_level: float) -> np.ndarray:
    """int16 bytes at ``orig_rate`` -> int16 array at 16 kHz with lead silence + noise floor."""
    x = torch.from_numpy(np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0)
    with torch.no_grad():
        y = _resampler(orig_rate, SAMPLE_RATE)(x.unsqueeze(0))[0].numpy()
    y = np.concatenate([np.zeros(int(round(lead_silence * SAMPLE_RATE)), np.float32), y])
    if noise_level > 0:
        noise = np.random.default_rng(noise_seed).standard_normal(len(y)).astype(np.float32)
        y = y + noise_level * noise
    return np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)


def synthesize_utterance(text: str, speaker: Speaker, style: str = "neutral", seed: int = 0,
                         jitter_rng: Optional[random.Random] = None) -> np.ndarray:
    """Speak ``text`` in this process; float32 mono at 16 kHz, no padding or noise.

    Meant for inspection and tests: exact samples depend on what the process
    synthesised before (eSpeak state), unlike corpus generation.
    """
    engine = espeak_tts.get_engine()
    params = prosody_params(speaker, style, jitter_rng)
    spoken = text if text[-1:] in ".?!" else text.lower() + "."
    raw = engine.synthesize(spoken, seed=seed, **params)
    return _to_16k(raw, engine.sample_rate, 0.0, 0, 0.0).astype(np.float32) / 32768.0


def _iter_worker_audio(jobs: List[dict],
                       info: Optional[dict] = None) -> Iterator[Tuple[int, bytes]]:
    """Synthesise ``jobs`` in a fresh worker process; yields (sample_rate, int16 bytes).

    ``info`` (if given) receives the worker's "sample_rate" and "espeak_version".
    """
    script = Path(espeak_tts.__file__).resolve()
    cmd = [sys.executable]
    if sys.version_info >= (3, 11):
        cmd.append("-P")  # do not put the script's folder on sys.path
    cmd.append(str(script))
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)

        def fail(msg):
            proc.kill()
            proc.wait()
            err.seek(0)
            detail = err.read().decode(errors="replace")[-4000:]
            raise espeak_tts.EspeakError(f"{msg}; espeak worker stderr:\n{detail}")

        try:
            try:
                proc.stdin.write(json.dumps(jobs).encode("utf-8"))
                proc.stdin.close()
            except BrokenPipeError:
                fail("The espeak worker exited early")
            header = proc.stdout.read(12)
            if len(header) != 12 or header[:4] != espeak_tts.WORKER_MAGIC:
                fail("The espeak worker sent no audio")
            rate, version_len = struct.unpack("<II", header[4:])
            version = proc.stdout.read(version_len).decode(errors="replace")
            if info is not None:
                info.update(sample_rate=rate, espeak_version=version)
            for k in range(len(jobs)):
                size_bytes = proc.stdout.read(4)
                if len(size_bytes) != 4:
                    fail(f"The espeak worker stopped after {k} of {len(jobs)} utterances")
                size = struct.unpack("<I", size_bytes)[0]
                data = proc.stdout.read(size)
                if len(data) != size:
                    fail(f"Truncated audio from the espeak worker (utterance {k})")
                yield rate, data
            if proc.wait() != 0:
                fail(f"The espeak worker exited with code {proc.returncode}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()


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
        ``{"train-clean-100": 20, "dev-clean": 5, "test-clean": 5}`` (the default),
        or one int for the three default splits.
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
    worker_info: Dict[str, object] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: threads only add overhead
    try:
        for k, (rate, raw) in enumerate(_iter_worker_audio(jobs, worker_info)):
            utt = plan[k]
            audio = _to_16k(raw, rate, utt.lead_silence, utt.noise_seed, noise_level)
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

    with open(out / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(LABEL_COLUMNS)
        for u in plan:
            duration = f"{durations[u.ID]:.7f}".rstrip("0").rstrip(".")
            writer.writerow([u.ID, u.split, u.speaker.spk_id, u.speaker.voice, u.speaker.gender,
                             u.scenario, u.style, duration, u.wrd])

    total = sum(durations.values())
    engine_version = str(worker_info.get("espeak_version", "unknown"))
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
        f"Regenerate: python scripts/make_tiny_corpus.py --out DIR --speakers "
        f"{options['num_speakers']} "
        + " ".join(f"--{k.split('-')[0]}-utts {v}" for k, v in options["utts_per_speaker"].items()
                   if k in DEFAULT_SPLITS)
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
    """Rows of ``<corpus_dir>/labels.csv`` (duration as float)."""
    with open(Path(corpus_dir) / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["duration"] = float(row["duration"])
    return rows
