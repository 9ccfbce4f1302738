"""IEMOCAP emotion recognition (4 classes) on a frozen BEST-RQ encoder: data + Brain glue.

Probes: ``linear`` (mean pooling + linear) and ``ECAPA`` (ECAPA-TDNN + linear).
Metric: accuracy, leave-one-session-out: one probe per fold in ``folds`` (test
session k, the other sessions train / validate); the reported accuracy is the
mean over the folds (each fold's number is kept in the metrics JSON).

Data (``dataset`` in the YAML):
* ``real``: ``data_folder`` is ``IEMOCAP_full_release`` (5 sessions);
* ``synthetic``: the synthetic corpus; emotion = prosody style, sessions =
  ``num_sessions`` groups of speakers.
"""

import statistics
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402
from hyperpyyaml import load_hyperpyyaml  # noqa: E402
from speechbrain.utils.distributed import run_on_main  # noqa: E402

TASK = "IEMOCAP_ER"


def prepare(hparams):
    """All folds' manifests; returns {session: {train, valid, test}}."""
    save = hparams["manifest_folder"]
    folds = [str(k) for k in hparams["folds"]]
    if hparams["dataset"] == "synthetic":
        from brq_att_alt.data.synthetic_tasks import prepare_synthetic_emotion

        common.ensure_synthetic_corpus(hparams)
        return prepare_synthetic_emotion(hparams["data_folder"], save, hparams["synthetic_splits"],
                                         num_sessions=hparams["num_sessions"], test_sessions=folds,
                                         valid_ratio=hparams["valid_ratio"])
    from brq_att_alt.data.iemocap import prepare_iemocap

    return prepare_iemocap(hparams["data_folder"], save, test_sessions=folds, valid_ratio=hparams["valid_ratio"])


def run_fold(hparams_file, overrides: dict, run_opts, paths):
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    Path(hparams["save_folder"]).mkdir(parents=True, exist_ok=True)
    data = {name: common.audio_dataset(paths[name], hparams, hparams.get(f"{name}_subset"))
            for name in ("train", "valid", "test")}
    common.label_pipeline(list(data.values()), "emo", hparams["label_encoder"],
                          Path(hparams["save_folder"]) / "label_encoder.txt")
    for d in data.values():
        d.set_output_keys(["id", "sig", "label_encoded"])
    brain = common.ClassificationBrain(modules=hparams["modules"], opt_class=hparams["optimizer"],
                                       hparams=hparams, run_opts=run_opts, checkpointer=hparams["checkpointer"])
    return common.fit_and_test_classifier(brain, hparams, data["train"], data["valid"], data["test"]), hparams


def main(argv=None, probe=None):
    hparams_file, run_opts, overrides, hparams = common.load_hparams(argv)
    common.create_experiment(hparams, hparams_file, overrides)
    run_on_main(prepare, kwargs={"hparams": hparams})
    folds = prepare(hparams)
    base = yaml.safe_load(overrides) if isinstance(overrides, str) and overrides.strip() else dict(overrides or {})
    per_fold = {}
    for k, paths in folds.items():
        acc, fold_hparams = run_fold(hparams_file, dict(base, test_session=int(k)), run_opts, paths)
        per_fold[k] = 100.0 * acc
    mean = statistics.mean(per_fold.values())
    hparams["weighted_sum"] = fold_hparams["weighted_sum"]  # last fold's layer weights in the JSON
    common.write_metrics(hparams, TASK, probe or hparams["probe_name"],
                         {"accuracy": {"value": mean, "direction": "higher", "unit": "%"}},
                         extra={"fold_accuracy": per_fold})
    return per_fold
