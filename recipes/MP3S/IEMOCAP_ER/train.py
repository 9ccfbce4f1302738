#!/usr/bin/env python3
"""MP3S IEMOCAP emotion recognition (4 classes) on a frozen BEST-RQ encoder.

    python recipes/MP3S/IEMOCAP_ER/linear/train.py recipes/MP3S/IEMOCAP_ER/linear/hparams/linear.yaml \\
        --pretrained_path results/brq_mhsa_tiny/1000

Every ``<probe>/train.py`` is a link to this file; the probe is the YAML's: ``linear``
(mean pooling + linear) or ``ECAPA`` (ECAPA-TDNN + linear). Metric: accuracy,
leave-one-session-out: one probe per fold in ``folds`` (test session k, the other sessions
train / validate, each fold in ``fold_<k>/``); the reported accuracy is the mean over the
folds (each fold's number is kept in the metrics JSON).

Data (``dataset`` in the YAML):
* ``real``: ``data_folder`` is ``IEMOCAP_full_release`` (5 sessions);
* ``synthetic``: the synthetic corpus; emotion = prosody style, sessions =
  ``num_sessions`` groups of speakers.
"""

import statistics

import yaml
from speechbrain.utils.distributed import run_on_main

from brq_att_alt.data.iemocap import prepare_iemocap
from brq_att_alt.data.synthetic import ensure_synthetic_corpus
from brq_att_alt.data.synthetic_tasks import prepare_synthetic_emotion
from brq_att_alt.hparams import load_hparams_file
from brq_att_alt.probes.training import start_probe_experiment, train_classifier, write_metrics

TASK = "IEMOCAP_ER"


def prepare(hparams):
    """All folds' manifests; returns {session: {"train", "valid", "test": csv path}}."""
    save = hparams["manifest_folder"]
    folds = [str(k) for k in hparams["folds"]]
    if hparams["dataset"] == "synthetic":
        corpus = ensure_synthetic_corpus(hparams["data_folder"], hparams["synthetic_corpus_options"])
        return prepare_synthetic_emotion(corpus, save, hparams["synthetic_splits"],
                                         num_sessions=hparams["num_sessions"], test_sessions=folds,
                                         valid_ratio=hparams["valid_ratio"])
    return prepare_iemocap(hparams["data_folder"], save, test_sessions=folds, valid_ratio=hparams["valid_ratio"])


def main(argv=None):
    hparams_file, run_opts, overrides, hparams = start_probe_experiment(argv)
    run_on_main(prepare, kwargs={"hparams": hparams})
    folds = prepare(hparams)
    base = yaml.safe_load(overrides) if isinstance(overrides, str) and overrides.strip() else dict(overrides or {})
    per_fold = {}
    for k, paths in folds.items():  # a fresh probe (and weighted sum) per fold
        fold_hparams = load_hparams_file(hparams_file, dict(base, test_session=int(k)))
        _, accuracy = train_classifier(fold_hparams, run_opts, paths, "emo")
        per_fold[k] = 100.0 * accuracy
    hparams["weighted_sum"] = fold_hparams["weighted_sum"]  # last fold's layer weights in the JSON
    write_metrics(hparams, TASK, {"accuracy": {"value": statistics.mean(per_fold.values()), "direction": "higher",
                                               "unit": "%"}}, extra={"fold_accuracy": per_fold})
    return per_fold


if __name__ == "__main__":
    main()
