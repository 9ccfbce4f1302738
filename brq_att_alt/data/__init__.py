"""Data layer: audio reading, one preparation module per dataset, the synthetic eSpeak corpus,
and the manifests as SpeechBrain datasets (``datasets.audio_dataset``)."""

from .audio import AudioReadError, read_audio
from .librispeech import merge_manifests, prepare_librispeech, prepare_recipe_manifests
from .synthetic import STYLES, Speaker, load_labels, make_speakers, make_synthetic_corpus, plan_corpus
from .synthetic_text import SCENARIOS

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
]
