"""LibriSpeech ASR (CTC over characters) on a frozen BEST-RQ encoder: data glue.

Probes: ``BiLSTM`` (2-layer BiLSTM) and ``ContextNet`` (SpeechBrain's ContextNet);
the Brain is ``../asr.py``. Metrics: WER on every test split, without LM
(greedy) and with the n-gram LM (``lm_path``: the official 4-gram ARPA for the
real data; built from the training transcripts when ``build_lm``).

Data (``dataset`` in the YAML): the LibriSpeech layout either way, so both the
real LibriSpeech (``real``) and the synthetic corpus (``synthetic``, generated
if absent) are prepared by ``brq_att_alt.data.prepare_librispeech``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import asr  # noqa: E402
import common  # noqa: E402
from speechbrain.utils.distributed import run_on_main  # noqa: E402

from brq_att_alt.data.librispeech import prepare_librispeech  # noqa: E402

TASK = "LibriSpeech_ASR"


def prepare(hparams):
    if hparams["dataset"] == "synthetic":
        common.ensure_synthetic_corpus(hparams)
    splits = [hparams["train_split"], hparams["valid_split"]] + list(hparams["test_splits"])
    csvs = prepare_librispeech(hparams["data_folder"], hparams["manifest_folder"], splits=splits,
                               max_duration=hparams.get("max_duration"))
    return {"train": csvs[hparams["train_split"]], "valid": csvs[hparams["valid_split"]],
            "test": {s: csvs[s] for s in hparams["test_splits"]}}


def main(argv=None, probe=None):
    hparams, run_opts = common.setup_experiment(argv)
    run_on_main(prepare, kwargs={"hparams": hparams})
    paths = prepare(hparams)
    return asr.run(hparams, run_opts, paths, TASK, probe or hparams["probe_name"])
