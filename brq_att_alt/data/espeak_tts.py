"""Small ctypes binding to libespeak-ng, used to synthesise a speech corpus.

The library and its data come from the ``espeakng_loader`` wheel. eSpeak NG is
driven in ``AUDIO_OUTPUT_SYNCHRONOUS`` (retrieval) mode: ``espeak_Synth`` blocks
and hands the audio to a synth callback, which collects the int16 samples
(22.05 kHz, mono).

eSpeak NG keeps process-global state, so one :class:`EspeakEngine` exists per
process (:func:`get_engine`, initialised once and cached) and every call takes a
lock. Part of that state survives between utterances (the pitch "flutter"
phase, the waveform phase), so the exact samples of an utterance depend on what
the process synthesised before it. :func:`espeak_ng_SetRandSeed` is called with
a per-request seed for the breath noise, and corpus generation runs in a fresh
worker process (this file run as a script, see :func:`_worker_main`), which
makes a corpus bit-identical from one run to the next on the same machine.

This module must stay importable without the package (the worker runs it by
path, without importing torch): standard library only, numpy imported lazily.
"""

import ctypes
import json
import os
import struct
import sys
import threading
from pathlib import Path
from typing import Dict, List, Optional

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_DONT_EXIT = 0x8000
CHARS_UTF8 = 1
ENDPAUSE = 0x1000

PARAM_RATE = 1
PARAM_VOLUME = 2
PARAM_PITCH = 3
PARAM_RANGE = 4
PARAM_WORDGAP = 7

RATE_MIN, RATE_MAX = 80, 450  # words per minute, as in speak_lib.h
EE_OK = 0

WORKER_MAGIC = b"ESPK"

# speak_lib.h: typedef int (t_espeak_callback)(short*, int, espeak_EVENT*);
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class EspeakVoice(ctypes.Structure):
    """``espeak_VOICE`` from speak_lib.h (for espeak_SetVoiceByProperties)."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),  # 0 none, 1 male, 2 female
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


class EspeakError(RuntimeError):
    """libespeak-ng failed or is not available."""


def _loader_paths():
    try:
        import espeakng_loader
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise EspeakError(
            "The synthetic corpus needs the 'espeakng-loader' package "
            "(pip install espeakng-loader), which ships libespeak-ng and its data."
        ) from err
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


def data_path() -> Path:
    """The espeak-ng-data folder shipped by espeakng_loader."""
    return Path(_loader_paths()[1])


def available_variants() -> Dict[str, str]:
    """Voice variants (``voices/!v/<name>``) mapped to their gender.

    The gender is read from the variant file's ``gender`` line ("male",
    "female" or "none" when absent).
    """
    folder = data_path() / "voices" / "!v"
    out = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        gender = "none"
        try:
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "gender":
                    gender = parts[1].lower()
                    break
        except OSError:
            continue
        out[path.name] = gender
    return out


def english_languages() -> List[str]:
    """English voice names in espeak-ng-data (``lang/gmw/en*`` files), lower case.

    These are the names ``espeak_SetVoiceByName`` accepts (``en``, ``en-us``,
    ``en-gb-x-rp``...). The Shavian-alphabet voice is left out (it expects
    Shavian script).
    """
    names = [p.name.lower() for p in (data_path() / "lang" / "gmw").glob("en*") if p.is_file()]
    return sorted(n for n in names if n != "en-shaw")


class EspeakEngine:
    """One initialised libespeak-ng (synchronous mode) with a synth callback.

    Do not build several: eSpeak NG state is global to the process. Use
    :func:`get_engine`.
    """

    def __init__(self, library_path: Optional[str] = None, data_dir: Optional[str] = None,
                 buffer_ms: int = 500):
        lib_default, data_default = _loader_paths()
        self.library_path = str(library_path or lib_default)
        self.data_dir = str(data_dir or data_default)
        try:
            lib = ctypes.CDLL(self.library_path)
        except OSError as err:
            raise EspeakError(f"Cannot load libespeak-ng from {self.library_path}: {err}") from err
        self._lib = lib
        self._declare(lib)
        rate = lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, int(buffer_ms), self.data_dir.encode(), INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise EspeakError(
                f"espeak_Initialize failed (returned {rate}) with data path {self.data_dir}"
            )
        self.sample_rate = int(rate)
        self.version = lib.espeak_Info(None).decode(errors="replace")
        self.has_rand_seed = hasattr(lib, "espeak_ng_SetRandSeed")
        self._chunks: List[bytes] = []
        self._callback = _SYNTH_CALLBACK(self._on_audio)  # keep a reference alive
        lib.espeak_SetSynthCallback(self._callback)
        self._lock = threading.RLock()
        self._variants = available_variants()

    @staticmethod
    def _declare(lib):
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(EspeakVoice)]
        lib.espeak_SetVoiceByProperties.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int
        if hasattr(lib, "espeak_ng_SetRandSeed"):
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
            lib.espeak_ng_SetRandSeed.restype = ctypes.c_int

    def _on_audio(self, wav, num_samples, _events):
        if num_samples > 0 and wav:
            self._chunks.append(ctypes.string_at(wav, 2 * num_samples))
        return 0  # 0 = continue

    def _check(self, code: int, what: str):
        if code != EE_OK:
            raise EspeakError(f"{what} failed with espeak error code {code}")

    def set_voice(self, voice: str):
        """Select ``language[+variant]``, e.g. ``en-gb-x-rp+m3``.

        eSpeak silently ignores an unknown variant, so it is checked here.
        """
        language, _, variant = voice.partition("+")
        if variant and variant not in self._variants:
            raise ValueError(f"Unknown espeak voice variant {variant!r} in {voice!r}")
        code = self._lib.espeak_SetVoiceByName(voice.encode())
        if code != EE_OK:
            raise ValueError(f"Unknown espeak voice {voice!r} (espeak error code {code})")

    def set_voice_by_properties(self, language: str, gender: int = 0, age: int = 0,
                                variant: int = 0):
        """espeak_SetVoiceByProperties: best voice for a language/gender/age."""
        spec = EspeakVoice(None, language.encode(), None, gender, age, variant, 0, 0, None)
        code = self._lib.espeak_SetVoiceByProperties(ctypes.byref(spec))
        if code != EE_OK:
            raise ValueError(f"No espeak voice for language {language!r} (error code {code})")

    def synthesize(self, text: str, voice: str = "en", rate: int = 175, pitch: int = 50,
                   pitch_range: int = 50, volume: int = 100, word_gap: int = 0,
                   seed: Optional[int] = 0) -> bytes:
        """Synthesise ``text``; returns raw little-endian int16 mono samples.

        rate: words per minute (80..450); pitch, pitch_range: 0..100 (50 is the
        voice's own); volume: 0..200 (100 is normal); word_gap: extra pause
        between words in units of 10 ms; seed: random seed of the breath noise.
        """
        values = {
            PARAM_RATE: int(min(max(rate, RATE_MIN), RATE_MAX)),
            PARAM_VOLUME: int(min(max(volume, 0), 200)),
            PARAM_PITCH: int(min(max(pitch, 0), 100)),
            PARAM_RANGE: int(min(max(pitch_range, 0), 100)),
            PARAM_WORDGAP: int(max(word_gap, 0)),
        }
        data = text.encode("utf-8") + b"\0"
        with self._lock:
            self.set_voice(voice)
            for param, value in values.items():
                self._check(self._lib.espeak_SetParameter(param, value, 0), "espeak_SetParameter")
            if seed is not None and self.has_rand_seed:
                self._lib.espeak_ng_SetRandSeed(int(seed) & 0x7FFFFFFF)
            self._chunks = []
            try:
                code = self._lib.espeak_Synth(data, len(data), 0, 0, 0, CHARS_UTF8 | ENDPAUSE,
                                              None, None)
                self._check(code, "espeak_Synth")
                self._lib.espeak_Synchronize()
                return b"".join(self._chunks)
            finally:
                self._chunks = []


_ENGINE: Optional[EspeakEngine] = None
_ENGINE_LOCK = threading.Lock()


def get_engine() -> EspeakEngine:
    """The process-wide engine, initialised on first use."""
    global _ENGINE
    if _ENGINE is None:
        with _ENGINE_LOCK:
            if _ENGINE is None:
                _ENGINE = EspeakEngine()
    return _ENGINE


def synthesize(text: str, voice: str = "en", **params):
    """In-process synthesis -> numpy int16 array at ``get_engine().sample_rate``."""
    import numpy as np

    return np.frombuffer(get_engine().synthesize(text, voice, **params), dtype="<i2").copy()


_JOB_KEYS = ("text", "voice", "rate", "pitch", "pitch_range", "volume", "word_gap", "seed")


def _worker_main():
    """Worker process: JSON list of jobs on stdin, framed int16 audio on stdout.

    Output: b"ESPK", uint32 sample rate, uint32 length + eSpeak NG version (UTF-8),
    then per job a uint32 byte count and the int16 samples.
    Anything the C library prints is sent to stderr.
    """
    proto = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    jobs = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    engine = get_engine()
    version = engine.version.encode()
    proto.write(WORKER_MAGIC + struct.pack("<II", engine.sample_rate, len(version)) + version)
    for job in jobs:
        audio = engine.synthesize(**{k: job[k] for k in _JOB_KEYS if k in job})
        proto.write(struct.pack("<I", len(audio)))
        proto.write(audio)
    proto.flush()
    proto.close()


if __name__ == "__main__":
    _worker_main()
