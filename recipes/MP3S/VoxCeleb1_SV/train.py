#!/usr/bin/env python3
"""MP3S VoxCeleb1 speaker verification on a frozen BEST-RQ encoder.

    python recipes/MP3S/VoxCeleb1_SV/ECAPA/train.py recipes/MP3S/VoxCeleb1_SV/ECAPA/hparams/ECAPA.yaml \\
        --pretrained_path results/brq_mhsa_tiny/1000

Every ``<probe>/train.py`` is a link to this file; the probe is the YAML's: ``Xvector`` or
``ECAPA`` (SpeechBrain's lobes) produce speaker embeddings, trained as a speaker
classifier on the training speakers as MP3S and the papers' runs did (X-vector:
SpeechBrain's ``Xvector.Classifier`` + NLL; ECAPA: ``ECAPA_TDNN.Classifier`` + AAM-softmax),
on random ``crop_seconds`` (3 s) crops, one per whole 3 s of each utterance and epoch; the
embeddings of the whole test utterances are cosine-scored on the trial list (VoxCeleb
format ``label enrol test``). Metrics: EER (%) and, beside it, minDCF (p_target 0.01,
C_miss = C_fa = 1, as SpeechBrain's VoxCeleb recipes); both lower is better, see
``brq_att_alt.probes.verification``; the EER with its 95% bootstrap interval over the trials
(``brq_att_alt.probes.compare.eer_ci``).

Data (``dataset`` in the YAML):
* ``real``: ``data_folder`` is VoxCeleb1 (``wav/`` + ``veri_test2.txt``);
* ``synthetic``: the synthetic corpus; the last ``num_test_speakers`` speakers are
  held out for the trials (all pairs of their test utterances).
"""

from speechbrain.utils.distributed import run_on_main

from brq_att_alt.data.synthetic import ensure_synthetic_corpus
from brq_att_alt.data.synthetic_tasks import prepare_synthetic_verification
from brq_att_alt.data.voxceleb import crop_manifest, prepare_voxceleb1, read_trial_list
from brq_att_alt.probes.compare import eer_ci
from brq_att_alt.probes.training import probe_dataset, start_probe_experiment, train_classifier, write_metrics
from brq_att_alt.probes.verification import compute_eer, compute_min_dcf, score_trials

TASK = "VoxCeleb1_SV"


def prepare(hparams):
    """Manifests and trial list; returns {"train", "valid", "test", "trials": path}; with
    ``crop_seconds``, train and valid are the ``crop_manifest`` of the prepared ones."""
    save = hparams["manifest_folder"]
    if hparams["dataset"] == "synthetic":
        corpus = ensure_synthetic_corpus(hparams["data_folder"], hparams["synthetic_corpus_options"])
        paths = prepare_synthetic_verification(corpus, save, **hparams["synthetic_options"])
    else:
        paths = prepare_voxceleb1(hparams["data_folder"], save, trial_list=hparams.get("trial_list"),
                                  valid_ratio=hparams["valid_ratio"])
    if hparams.get("crop_seconds"):
        for split in ("train", "valid"):
            paths[split] = str(crop_manifest(paths[split], f"{save}/{split}_crops.csv", hparams["crop_seconds"]))
    return paths


def main(argv=None):
    _, run_opts, _, hparams = start_probe_experiment(argv)
    run_on_main(prepare, kwargs={"hparams": hparams})
    paths = prepare(hparams)
    brain, _ = train_classifier(hparams, run_opts, paths, "spk_id", test=False)
    test = probe_dataset(hparams, paths["test"])
    test.set_output_keys(["id", "sig"])
    embeddings = brain.embeddings(test, hparams["test_dataloader_opts"])
    trials = read_trial_list(paths["trials"])
    pos, neg = score_trials(trials, embeddings)
    confidence = float(hparams.get("confidence", 0.95))
    eer, low, high = eer_ci(pos, neg, confidence, int(hparams.get("bootstrap_samples", 1000)))
    threshold = compute_eer(pos, neg)[1]
    min_dcf, dcf_threshold = compute_min_dcf(pos, neg, p_target=0.01, c_miss=1.0, c_fa=1.0)
    hparams["train_logger"].log_stats(stats_meta={"trials": len(trials)},
                                      test_stats={"EER": 100 * eer, "minDCF": min_dcf})
    write_metrics(hparams, TASK,
                  {"EER": {"value": 100.0 * eer, "direction": "lower", "unit": "%", "ci95": [100.0 * low, 100.0 * high],
                           "confidence": confidence, "interval": "stratified bootstrap over the trials"},
                   "minDCF": {"value": min_dcf, "direction": "lower", "unit": "",
                              "p_target": 0.01, "c_miss": 1.0, "c_fa": 1.0}},
                  extra={"threshold": threshold, "min_dcf_threshold": dcf_threshold, "num_trials": len(trials)})
    return brain


if __name__ == "__main__":
    main()
