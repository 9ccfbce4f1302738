#!/usr/bin/env python3
"""MP3S LibriSpeech ASR (CTC over characters) on a frozen BEST-RQ encoder.

    python recipes/MP3S/LibriSpeech_ASR/BiLSTM/train.py recipes/MP3S/LibriSpeech_ASR/BiLSTM/hparams/BiLSTM.yaml \\
        --pretrained_path results/brq_mhsa_tiny/1000

Every ``<probe>/train.py`` is a link to this file; the probe is the YAML's: ``BiLSTM``
(2-layer BiLSTM) or ``ContextNet`` (SpeechBrain's ContextNet), trained by
``brq_att_alt.probes.training.train_asr_probe``. Metrics: WER on every test split, without
LM (greedy) and with the n-gram LM (``lm_path``: the official 4-gram ARPA for the real
data; built from the training transcripts when ``build_lm``).

Data (``dataset`` in the YAML): the LibriSpeech layout either way, so both the real
LibriSpeech (``real``) and the synthetic corpus (``synthetic``, generated if absent) are
prepared by ``brq_att_alt.data.librispeech.prepare_librispeech``.
"""

from speechbrain.utils.distributed import run_on_main

from brq_att_alt.data.librispeech import prepare_librispeech
from brq_att_alt.data.synthetic import ensure_synthetic_corpus
from brq_att_alt.probes.training import start_probe_experiment, train_asr_probe, write_metrics

TASK = "LibriSpeech_ASR"


def prepare(hparams):
    """Manifests; returns {"train", "valid": csv path, "test": {split: csv path}}."""
    if hparams["dataset"] == "synthetic":
        ensure_synthetic_corpus(hparams["data_folder"], hparams["synthetic_corpus_options"])
    splits = [hparams["train_split"], hparams["valid_split"]] + list(hparams["test_splits"])
    csvs = prepare_librispeech(hparams["data_folder"], hparams["manifest_folder"], splits=splits,
                               max_duration=hparams.get("max_duration"))
    return {"train": csvs[hparams["train_split"]], "valid": csvs[hparams["valid_split"]],
            "test": {s: csvs[s] for s in hparams["test_splits"]}}


def main(argv=None):
    _, run_opts, _, hparams = start_probe_experiment(argv)
    run_on_main(prepare, kwargs={"hparams": hparams})
    metrics, extra = train_asr_probe(hparams, run_opts, prepare(hparams))
    write_metrics(hparams, TASK, metrics, extra)
    return metrics


if __name__ == "__main__":
    main()
