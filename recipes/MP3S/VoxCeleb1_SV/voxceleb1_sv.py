"""VoxCeleb1 speaker verification on a frozen BEST-RQ encoder: data + Brain glue.

Probes: ``Xvector`` and ``ECAPA`` (SpeechBrain's lobes) produce speaker
embeddings, trained as a speaker classifier (AAM-softmax on a cosine
classifier) on the training speakers; the embeddings of the test utterances
are cosine-scored on the trial list (VoxCeleb format ``label enrol test``).
Metrics: EER (%) and, beside it, minDCF (p_target 0.01, C_miss = C_fa = 1, as SpeechBrain's
VoxCeleb recipes); both lower is better, see ``brq_att_alt.probes.verification``.

Data (``dataset`` in the YAML):
* ``real``: ``data_folder`` is VoxCeleb1 (``wav/`` + ``veri_test2.txt``);
* ``synthetic``: the synthetic corpus; the last ``num_test_speakers`` speakers are
  held out for the trials (all pairs of their test utterances).
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402
import speechbrain as sb  # noqa: E402
from speechbrain.utils.distributed import run_on_main  # noqa: E402

from brq_att_alt.data.voxceleb import read_trial_list  # noqa: E402
from brq_att_alt.probes.verification import compute_eer, compute_min_dcf, score_trials  # noqa: E402

TASK = "VoxCeleb1_SV"


def prepare(hparams):
    save = hparams["manifest_folder"]
    if hparams["dataset"] == "synthetic":
        from brq_att_alt.data.synthetic_tasks import prepare_synthetic_verification

        common.ensure_synthetic_corpus(hparams)
        opts = hparams["synthetic_options"]
        return prepare_synthetic_verification(hparams["data_folder"], save, **opts)
    from brq_att_alt.data.voxceleb import prepare_voxceleb1

    return prepare_voxceleb1(hparams["data_folder"], save, trial_list=hparams.get("trial_list"))


class VerificationBrain(common.ClassificationBrain):
    """Speaker classification training; ``embed`` gives the probe's embeddings for scoring."""

    @torch.no_grad()
    def embed(self, dataset, loader_kwargs):
        self.on_evaluate_start(max_key="acc")
        self.modules.eval()
        loader = self.make_dataloader(dataset, sb.Stage.TEST, **loader_kwargs)
        out = {}
        for batch in loader:
            batch = batch.to(self.device)
            feats, lens = self.encode(batch)
            emb = self.modules.probe(feats, lens).cpu()
            for uid, e in zip(batch.id, emb):
                out[uid] = e
        return out


def main(argv=None, probe=None):
    hparams, run_opts = common.setup_experiment(argv)
    run_on_main(prepare, kwargs={"hparams": hparams})
    paths = prepare(hparams)
    data = {name: common.audio_dataset(paths[name], hparams, hparams.get(f"{name}_subset"))
            for name in ("train", "valid")}
    common.label_pipeline(list(data.values()), "spk_id", hparams["label_encoder"],
                          Path(hparams["save_folder"]) / "label_encoder.txt")
    for d in data.values():
        d.set_output_keys(["id", "sig", "label_encoded"])
    test = common.audio_dataset(paths["test"], hparams)
    test.set_output_keys(["id", "sig"])
    brain = VerificationBrain(modules=hparams["modules"], opt_class=hparams["optimizer"],
                              hparams=hparams, run_opts=run_opts, checkpointer=hparams["checkpointer"])
    brain.fit(brain.hparams.epoch_counter, data["train"], data["valid"],
              train_loader_kwargs=hparams["train_dataloader_opts"],
              valid_loader_kwargs=hparams["test_dataloader_opts"])
    embeddings = brain.embed(test, hparams["test_dataloader_opts"])
    trials = read_trial_list(paths["trials"])
    pos, neg = score_trials(trials, embeddings)
    eer, threshold = compute_eer(pos, neg)
    min_dcf, dcf_threshold = compute_min_dcf(pos, neg, p_target=0.01, c_miss=1.0, c_fa=1.0)
    hparams["train_logger"].log_stats(stats_meta={"trials": len(trials)},
                                      test_stats={"EER": 100 * eer, "minDCF": min_dcf})
    common.write_metrics(hparams, TASK, probe or hparams["probe_name"],
                         {"EER": {"value": 100.0 * eer, "direction": "lower", "unit": "%"},
                          "minDCF": {"value": min_dcf, "direction": "lower", "unit": "",
                                     "p_target": 0.01, "c_miss": 1.0, "c_fa": 1.0}},
                         extra={"threshold": threshold, "min_dcf_threshold": dcf_threshold,
                                "num_trials": len(trials)})
    return eer
