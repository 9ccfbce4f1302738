"""SLURP intent (scenario) classification on a frozen BEST-RQ encoder: data + Brain glue.

Probes: ``linear`` (mean pooling + linear) and ``BiLSTM`` (BiLSTM + mean pooling +
linear). Metric: test accuracy of the scenario (18 classes on SLURP, 8 on the
synthetic corpus).

Data (``dataset`` in the YAML):
* ``real``: ``data_folder`` is the SLURP release (``dataset/slurp/*.jsonl`` + ``slurp_real/``);
* ``synthetic``: ``data_folder`` is the synthetic corpus; the label is the sentence's scenario.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402
from speechbrain.utils.distributed import run_on_main  # noqa: E402

TASK = "SLURP_IC"


def prepare(hparams):
    save = hparams["manifest_folder"]
    if hparams["dataset"] == "synthetic":
        from brq_att_alt.data.synthetic_tasks import prepare_synthetic_intent

        common.ensure_synthetic_corpus(hparams)
        return prepare_synthetic_intent(hparams["data_folder"], save, hparams["synthetic_splits"])
    from brq_att_alt.data.slurp import prepare_slurp

    paths = prepare_slurp(hparams["data_folder"], save)
    return {"train": paths["train"], "valid": paths["dev"], "test": paths["test"]}


def main(argv=None, probe=None):
    hparams, run_opts = common.setup_experiment(argv)
    run_on_main(prepare, kwargs={"hparams": hparams})
    paths = prepare(hparams)  # idempotent: returns the manifest paths
    data = {
        name: common.audio_dataset(paths[name], hparams, hparams.get(f"{name}_subset"))
        for name in ("train", "valid", "test")
    }
    common.label_pipeline(list(data.values()), "scenario", hparams["label_encoder"],
                          Path(hparams["save_folder"]) / "label_encoder.txt")
    for d in data.values():
        d.set_output_keys(["id", "sig", "label_encoded"])
    brain = common.ClassificationBrain(modules=hparams["modules"], opt_class=hparams["optimizer"],
                                       hparams=hparams, run_opts=run_opts, checkpointer=hparams["checkpointer"])
    acc = common.fit_and_test_classifier(brain, hparams, data["train"], data["valid"], data["test"])
    common.write_metrics(hparams, TASK, probe or hparams["probe_name"],
                         {"accuracy": {"value": 100.0 * acc, "direction": "higher", "unit": "%"}})
    return brain
