#!/usr/bin/env python3
"""MP3S SLURP intent (scenario) classification on a frozen BEST-RQ encoder.

    python recipes/MP3S/SLURP_IC/linear/train.py recipes/MP3S/SLURP_IC/linear/hparams/linear.yaml \\
        --pretrained_path results/brq_mhsa_tiny/1000

Every ``<probe>/train.py`` is a link to this file; the probe is the YAML's: ``linear``
(mean pooling + linear) or ``BiLSTM`` (BiLSTM + mean pooling + linear). Metric: test
accuracy of the scenario (18 classes on SLURP, 8 on the synthetic corpus), with its 95%
bootstrap interval over the test utterances.

Data (``dataset`` in the YAML):
* ``real``: ``data_folder`` is the SLURP release (``dataset/slurp/*.jsonl`` + ``slurp_real/``);
* ``synthetic``: ``data_folder`` is the synthetic corpus; the label is the sentence's scenario.
"""

from speechbrain.utils.distributed import run_on_main

from brq_att_alt.data.slurp import prepare_slurp
from brq_att_alt.data.synthetic import ensure_synthetic_corpus
from brq_att_alt.data.synthetic_tasks import prepare_synthetic_intent
from brq_att_alt.probes.training import accuracy_metric, start_probe_experiment, train_classifier, write_metrics

TASK = "SLURP_IC"


def prepare(hparams):
    """Manifests; returns {"train", "valid", "test": csv path}."""
    save = hparams["manifest_folder"]
    if hparams["dataset"] == "synthetic":
        corpus = ensure_synthetic_corpus(hparams["data_folder"], hparams["synthetic_corpus_options"])
        return prepare_synthetic_intent(corpus, save, hparams["synthetic_splits"])
    paths = prepare_slurp(hparams["data_folder"], save)
    return {"train": paths["train"], "valid": paths["dev"], "test": paths["test"]}


def main(argv=None):
    _, run_opts, _, hparams = start_probe_experiment(argv)
    run_on_main(prepare, kwargs={"hparams": hparams})
    paths = prepare(hparams)  # idempotent: returns the manifest paths
    brain, _ = train_classifier(hparams, run_opts, paths, "scenario")
    write_metrics(hparams, TASK, {"accuracy": accuracy_metric(list(brain.test_items.values()), hparams)})
    return brain


if __name__ == "__main__":
    main()
