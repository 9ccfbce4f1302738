#!/usr/bin/env python3
"""MP3S IEMOCAP emotion recognition (4 classes) on a frozen BEST-RQ encoder.

    python recipes/MP3S/IEMOCAP_ER/linear/train.py recipes/MP3S/IEMOCAP_ER/linear/hparams/linear.yaml \\
        --pretrained_path results/brq_mhsa_tiny/1000

Every ``<probe>/train.py`` is a link to this file; the probe is the YAML's: ``linear``
(mean pooling + linear) or ``ECAPA`` (ECAPA-TDNN + its cosine classifier). Metric:
accuracy, MP3S's 10-fold leave-one-speaker-out: this script runs one probe per test
speaker in ``folds`` (default 1..10; the other speaker of the test speaker's session
validates, the 8 others train; each fold in ``fold_<k>/``, resumable), then reports the
mean over the folds with their spread (sample standard deviation, minimum, maximum) and
every fold's accuracy in the metrics JSON, and a 95% bootstrap interval over the test
utterances of all the folds.

Data (``dataset`` in the YAML):
* ``real``: ``data_folder`` is ``IEMOCAP_full_release`` (5 sessions, 10 speakers);
* ``synthetic``: the synthetic corpus; emotion = prosody style, the first
  ``num_speakers`` voices play IEMOCAP's speakers (two per session).
"""

import statistics

import yaml
from speechbrain.utils.distributed import run_on_main

from brq_att_alt.data.iemocap import prepare_iemocap
from brq_att_alt.data.synthetic import ensure_synthetic_corpus
from brq_att_alt.data.synthetic_tasks import prepare_synthetic_emotion
from brq_att_alt.hparams import load_hparams_file
from brq_att_alt.probes.training import accuracy_metric, start_probe_experiment, train_classifier, write_metrics

TASK = "IEMOCAP_ER"


def prepare(hparams):
    """The folds' manifests; returns {test speaker: {"train", "valid", "test": csv path}}."""
    save = hparams["manifest_folder"]
    folds = [int(k) for k in hparams["folds"]]
    if hparams["dataset"] == "synthetic":
        corpus = ensure_synthetic_corpus(hparams["data_folder"], hparams["synthetic_corpus_options"])
        return prepare_synthetic_emotion(corpus, save, hparams["synthetic_splits"],
                                         num_speakers=hparams["num_speakers"], test_speakers=folds)
    return prepare_iemocap(hparams["data_folder"], save, test_speakers=folds)


def fold_summary(per_fold: dict, correct=None, hparams=None) -> dict:
    """{fold: accuracy %} -> the accuracy metric: mean over the folds, with ``std`` (sample
    standard deviation; 0 for one fold), ``min``, ``max`` and ``folds`` (how many); with
    ``correct`` (every fold's test utterances: right or not), ``ci95``: the 95% bootstrap
    interval of the accuracy over those pooled utterances (``accuracy_metric``)."""
    values = list(per_fold.values())
    summary = {"value": statistics.mean(values), "direction": "higher", "unit": "%",
               "std": statistics.stdev(values) if len(values) > 1 else 0.0,
               "min": min(values), "max": max(values), "folds": len(values)}
    if correct:
        pooled = accuracy_metric(correct, hparams)
        summary.update({"ci95": pooled["ci95"], "pooled_accuracy": pooled["value"], "test_items": len(correct)})
    return summary


def main(argv=None):
    hparams_file, run_opts, overrides, hparams = start_probe_experiment(argv)
    run_on_main(prepare, kwargs={"hparams": hparams})
    folds = prepare(hparams)
    base = yaml.safe_load(overrides) if isinstance(overrides, str) and overrides.strip() else dict(overrides or {})
    per_fold, correct = {}, []
    for k, paths in folds.items():  # a fresh probe (and weighted sum) per fold
        fold_hparams = load_hparams_file(hparams_file, dict(base, test_speaker=int(k)))
        brain, accuracy = train_classifier(fold_hparams, run_opts, paths, "emo")
        per_fold[k] = 100.0 * accuracy
        correct += list(brain.test_items.values())
    hparams["weighted_sum"] = fold_hparams["weighted_sum"]  # last fold's layer weights in the JSON
    write_metrics(hparams, TASK, {"accuracy": fold_summary(per_fold, correct, hparams)},
                  extra={"fold_accuracy": per_fold})
    return per_fold


if __name__ == "__main__":
    main()
