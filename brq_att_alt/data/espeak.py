"""libespeak-ng through ctypes, and the worker process that synthesises a corpus.

The library and its data come from the ``espeakng_loader`` wheel. eSpeak NG is
driven in ``AUDIO_OUTPUT_SYNCHRONOUS`` (retrieval) mode: ``espeak_Synth`` blocks
and hands the audio to a synth callback, which collects the int16 samples
(22.05 kHz, mono).

eSpeak NG keeps process-global state, so one :class:`EspeakEngine` exists per
process (:func:`get_engine`, initialised once and cached) and every call takes a
lock. Part of that state survives between utterances (the pitch "flutter"
phase, the waveform phase), so the exact samples of an utterance depend on what
the process synthesised before it. :func:`espeak_ng_SetRandSeed` is called with
a per-request seed for the breath noise, and a corpus is synthesised in a fresh
worker process, which makes it bit-identical from one run to the next on the
same machine.

The worker protocol has both ends here: :class:`EspeakWorker` (the parent's end)
starts this file as a script, which runs :func:`_worker_main`. Wire format, on the
worker's stdout (the C library's own prints go to stderr)::

    b"ESPK"  uint32 sample rate  uint32 n  n bytes: eSpeak NG version (UTF-8)
    then per job:  uint32 n  n bytes: int16 little-endian mono samples

all integers little-endian. The jobs go to the worker's stdin as one JSON list.

This file must stay importable without the package (the worker runs it by path,
without importing torch): standard library only at module level; the parent's
side imports numpy, torch and the resampler when it reads audio.
"""

import ctypes
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Dict, Iterator, List, Optional

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
_HEADER = struct.Struct("<II")  # sample rate, length of the version string
_FRAME = struct.Struct("<I")  # byte count of one utterance's samples

# speak_lib.h: typedef int (t_espeak_callback)(short*, int, espeak_EVENT*);
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


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


_JOB_KEYS = ("text", "voice", "rate", "pitch", "pitch_range", "volume", "word_gap", "seed")


class EspeakWorker:
    """The parent's end of the protocol: a fresh worker process synthesising ``jobs``.

    ``jobs``: dicts of :meth:`EspeakEngine.synthesize` arguments (text, voice, rate,
    pitch, pitch_range, volume, word_gap, seed). Use it as a context manager (the
    worker is killed on exit)::

        with EspeakWorker(jobs) as worker:
            worker.sample_rate, worker.espeak_version      # from the worker's header
            for wav in worker.audio(16000): ...             # one float32 array per job, in order

    Any failure of the worker raises :class:`EspeakError` with the end of its stderr.
    """

    def __init__(self, jobs: List[dict]):
        self.num_jobs = len(jobs)
        cmd = [sys.executable]
        if sys.version_info >= (3, 11):
            cmd.append("-P")  # do not put this file's folder on sys.path
        cmd.append(str(Path(__file__).resolve()))
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        try:
            try:
                self._proc.stdin.write(json.dumps(jobs).encode("utf-8"))
                self._proc.stdin.close()
            except BrokenPipeError:
                self._fail("The espeak worker exited early")
            head = self._proc.stdout.read(len(WORKER_MAGIC) + _HEADER.size)
            if len(head) != len(WORKER_MAGIC) + _HEADER.size or not head.startswith(WORKER_MAGIC):
                self._fail("The espeak worker sent no audio")
            self.sample_rate, version_len = _HEADER.unpack(head[len(WORKER_MAGIC):])
            self.espeak_version = self._proc.stdout.read(version_len).decode(errors="replace")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "EspeakWorker":
        return self

    def __exit__(self, *exc):
        self.close()

    def _fail(self, msg: str):
        self._proc.kill()
        self._proc.wait()
        self._stderr.seek(0)
        detail = self._stderr.read().decode(errors="replace")[-4000:]
        raise EspeakError(f"{msg}; espeak worker stderr:\n{detail}")

    def samples(self) -> Iterator[bytes]:
        """The int16 little-endian samples of each job, in order, at ``sample_rate``."""
        for k in range(self.num_jobs):
            size = self._proc.stdout.read(_FRAME.size)
            if len(size) != _FRAME.size:
                self._fail(f"The espeak worker stopped after {k} of {self.num_jobs} utterances")
            (n,) = _FRAME.unpack(size)
            data = self._proc.stdout.read(n)
            if len(data) != n:
                self._fail(f"Truncated audio from the espeak worker (utterance {k})")
            yield data
        if self._proc.wait() != 0:
            self._fail(f"The espeak worker exited with code {self._proc.returncode}")

    def audio(self, sample_rate: Optional[int] = None) -> Iterator:
        """Each job's audio as float32 in [-1, 1), resampled to ``sample_rate`` (None: eSpeak's
        rate) with the package's resampler (``brq_att_alt.data.audio.resampler``)."""
        import numpy as np
        import torch

        from .audio import resampler

        for raw in self.samples():
            x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
            if sample_rate is None or sample_rate == self.sample_rate:
                yield x
                continue
            with torch.no_grad():
                yield resampler(self.sample_rate, sample_rate)(torch.from_numpy(x).unsqueeze(0))[0].numpy()

    def close(self):
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()
        self._stderr.close()


def _worker_main():
    """The worker process: JSON list of jobs on stdin, framed int16 audio on stdout
    (the wire format of the module docstring); the C library's prints go to stderr."""
    proto = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    jobs = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    engine = get_engine()
    version = engine.version.encode()
    proto.write(WORKER_MAGIC + _HEADER.pack(engine.sample_rate, len(version)) + version)
    for job in jobs:
        audio = engine.synthesize(**{k: job[k] for k in _JOB_KEYS if k in job})
        proto.write(_FRAME.pack(len(audio)))
        proto.write(audio)
    proto.flush()
    proto.close()


if __name__ == "__main__":
    _worker_main()
