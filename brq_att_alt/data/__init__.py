"""Data layer: synthetic eSpeak corpus, LibriSpeech preparation, audio reading."""

from .audio import AudioReadError, read_audio
from .librispeech import merge_manifests, prepare_librispeech, prepare_recipe_manifests
from .synthetic import (
    SCENARIOS,
    STYLES,
    Speaker,
    load_labels,
    make_speakers,
    make_synthetic_corpus,
    plan_corpus,
    synthesize_utterance,
)

__all__ = [
    "AudioReadError",
    "SCENARIOS",
    "STYLES",
    "Speaker",
    "load_labels",
    "make_speakers",
    "make_synthetic_corpus",
    "plan_corpus",
    "merge_manifests",
    "prepare_librispeech",
    "prepare_recipe_manifests",
    "read_audio",
    "synthesize_utterance",
]
