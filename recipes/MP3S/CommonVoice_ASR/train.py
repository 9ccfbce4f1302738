#!/usr/bin/env python3
"""MP3S Common Voice 11 low-resource ASR (Welsh ``cy`` / Basque ``eu``) on a frozen BEST-RQ
encoder: CTC over a 100-unit SentencePiece BPE vocabulary trained on the training
transcripts, training utterances over 10 s left out, as MP3S.

    python recipes/MP3S/CommonVoice_ASR/linear/train.py recipes/MP3S/CommonVoice_ASR/linear/hparams/linear.yaml \\
        --pretrained_path results/brq_mhsa_tiny/1000

Every ``<probe>/train.py`` is a link to this file; the probe is the YAML's: ``linear`` or
``BiLSTM``, trained by ``brq_att_alt.probes.training.train_asr_probe``. Metrics: test WER
with MP3S's CTC beam search without LM (``WER test beam``, beam 143: the MP3S figure) and
greedy (``WER test``); an n-gram LM only when ``lm_path`` is given or ``build_lm`` is set.

Data (``dataset`` in the YAML):
* ``real``: ``data_folder`` is the language folder of the release (train.tsv,
  dev.tsv, test.tsv, clips/) or the release folder holding ``<language>/``;
* ``synthetic``: the synthetic corpus; ``synthetic_splits`` picks a small training
  set (low-resource) from its splits; ``language`` is only a label then.
"""

from speechbrain.utils.distributed import run_on_main

from brq_att_alt.data.commonvoice import prepare_commonvoice
from brq_att_alt.data.synthetic import ensure_synthetic_corpus
from brq_att_alt.data.synthetic_tasks import prepare_synthetic_asr
from brq_att_alt.probes.training import start_probe_experiment, train_asr_probe, write_metrics

TASK = "CommonVoice_ASR"
LANGUAGES = ("cy", "eu")


def prepare(hparams):
    """Manifests; returns {"train", "valid": csv path, "test": {"test": csv path}}."""
    save = hparams["manifest_folder"]
    if hparams["dataset"] == "synthetic":
        corpus = ensure_synthetic_corpus(hparams["data_folder"], hparams["synthetic_corpus_options"])
        csvs = prepare_synthetic_asr(corpus, save, hparams["synthetic_splits"])
    else:
        csvs = prepare_commonvoice(hparams["data_folder"], save, language=hparams["language"])
        csvs["valid"] = csvs.pop("dev")
    return {"train": csvs["train"], "valid": csvs["valid"], "test": {"test": csvs["test"]}}


def main(argv=None):
    _, run_opts, _, hparams = start_probe_experiment(argv)
    if hparams["language"] not in LANGUAGES:
        raise SystemExit(f"language must be one of {LANGUAGES}, got {hparams['language']!r}")
    run_on_main(prepare, kwargs={"hparams": hparams})
    metrics, extra = train_asr_probe(hparams, run_opts, prepare(hparams))
    write_metrics(hparams, f"{TASK} ({hparams['language']})", metrics, extra)
    return metrics


if __name__ == "__main__":
    main()
