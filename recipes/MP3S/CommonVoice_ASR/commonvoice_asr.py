"""Common Voice 11 low-resource ASR (Welsh ``cy`` / Basque ``eu``, CTC over the
characters of the training transcripts) on a frozen BEST-RQ encoder: data glue.

Probes: ``linear`` and ``BiLSTM``; the Brain is ``../asr.py``. Metric: test WER
(no LM; an LM is used only when ``lm_path`` is given or ``build_lm`` is set).

Data (``dataset`` in the YAML):
* ``real``: ``data_folder`` is the language folder of the release (train.tsv,
  dev.tsv, test.tsv, clips/) or the release folder holding ``<language>/``;
* ``synthetic``: the synthetic corpus; ``synthetic_splits`` picks a small training
  set (low-resource) from its splits; ``language`` is only a label then.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import asr  # noqa: E402
import common  # noqa: E402
from speechbrain.utils.distributed import run_on_main  # noqa: E402

TASK = "CommonVoice_ASR"
LANGUAGES = ("cy", "eu")


def prepare(hparams):
    save = hparams["manifest_folder"]
    if hparams["dataset"] == "synthetic":
        from brq_att_alt.data.synthetic_tasks import prepare_synthetic_asr

        common.ensure_synthetic_corpus(hparams)
        csvs = prepare_synthetic_asr(hparams["data_folder"], save, hparams["synthetic_splits"])
    else:
        from brq_att_alt.data.commonvoice import prepare_commonvoice

        csvs = prepare_commonvoice(hparams["data_folder"], save, language=hparams["language"],
                                   max_duration=hparams.get("max_duration"))
        csvs["valid"] = csvs.pop("dev")
    return {"train": csvs["train"], "valid": csvs["valid"], "test": {"test": csvs["test"]}}


def main(argv=None, probe=None):
    hparams, run_opts = common.setup_experiment(argv)
    if hparams["language"] not in LANGUAGES:
        raise SystemExit(f"language must be one of {LANGUAGES}, got {hparams['language']!r}")
    run_on_main(prepare, kwargs={"hparams": hparams})
    paths = prepare(hparams)
    task = f"{TASK} ({hparams['language']})"
    return asr.run(hparams, run_opts, paths, task, probe or hparams["probe_name"])
