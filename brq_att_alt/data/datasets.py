"""SpeechBrain datasets read from the CSV manifests of the dataset preparations.

``audio_dataset`` is the one reader every recipe uses (pre-training, CTC fine-tuning, MP3S
probes): a ``DynamicItemDataset`` of a manifest (columns ``ID``, ``duration`` in seconds,
``wav``, ...) whose ``sig`` item is the audio, resampled to ``sample_rate``.
"""

from pathlib import Path
from typing import Optional, Union

import torch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.utils.data_pipeline import provides, takes

from .audio import read_audio

SORTS = ("ascending", "descending", None)


def subsample(dataset: DynamicItemDataset, n: Optional[int]) -> DynamicItemDataset:
    """Keep ``n`` utterances spread evenly over the manifest order (all when n is None)."""
    ids = dataset.data_ids
    if n is None or n >= len(ids):
        return dataset
    keep = {ids[int(i * len(ids) / n)] for i in range(n)}
    return dataset.filtered_sorted(key_test={"id": lambda uid: uid in keep})


def audio_dataset(csv_path: Union[str, Path], sample_rate: int = 16000, sort: Optional[str] = "ascending",
                  min_duration: Optional[float] = None, max_duration: Optional[float] = None,
                  subset: Optional[int] = None, crop_seconds: Optional[float] = None) -> DynamicItemDataset:
    """A manifest as a dataset with the ``sig`` audio item (float32 (samples,) at ``sample_rate``).

    ``subset``: keep that many utterances, spread evenly (``subsample``); then those with
    ``min_duration <= duration <= max_duration`` (None: no bound), sorted by duration
    (``sort``: "ascending", "descending" or None for the manifest order). An empty manifest,
    or one the bounds leave empty, is an error that says which. ``crop_seconds``: ``sig`` is
    a random crop of that length, drawn anew at every read (an utterance that is shorter
    is read whole), as SpeechBrain's VoxCeleb recipes train on random 3 s chunks.
    """
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {SORTS}, got {sort!r}")
    data = DynamicItemDataset.from_csv(csv_path=str(csv_path))
    if len(data) == 0:
        raise ValueError(f"Manifest {csv_path} holds no utterance")
    data = subsample(data, subset)
    bounds = {"key_min_value": {"duration": min_duration} if min_duration is not None else {},
              "key_max_value": {"duration": max_duration} if max_duration is not None else {}}
    if sort is not None or any(bounds.values()):
        data = data.filtered_sorted(sort_key="duration" if sort else None, reverse=sort == "descending", **bounds)
    if len(data) == 0:
        raise ValueError(f"No utterance of {csv_path} lies within min_duration={min_duration} and "
                         f"max_duration={max_duration} s: check the data or these keys.")

    @takes("wav")
    @provides("sig")
    def audio_pipeline(wav):
        sig = read_audio(wav, sample_rate=sample_rate)
        if crop_seconds is None:
            return sig
        length = int(round(crop_seconds * sample_rate))
        if sig.shape[0] <= length:
            return sig
        start = int(torch.randint(0, sig.shape[0] - length + 1, (1,)))
        return sig[start: start + length]

    data.add_dynamic_item(audio_pipeline)
    return data
