"""Training probes on a frozen BEST-RQ encoder: what the MP3S recipes share.

A task's entry point (``recipes/MP3S/<Task>/train.py``) prepares its manifests and calls
what is here:

* ``start_probe_experiment(argv)``: the YAML and command line (``brq_att_alt.hparams``),
  then the experiment folder, refused if it holds a run of another configuration
  (``run_configuration``: encoder, pre-trained checkpoint, probe);
* ``ProbeBrain``: a Brain whose ``encode`` runs the frozen encoder (no grad; optionally
  cached) and the learned ``WeightedLayerSum``; the MP3S training protocol: two optimisers,
  the probe's and the layer weights', each with its own learning-rate schedule (NewBob on
  a validation figure, or per epoch such as ``LinearScheduler``, or none); batches with a
  non-finite loss or gradient are skipped and logged (``brq_att_alt.training.FaultTolerantBrain``);
* ``train_classifier``: utterance classification (intent, emotion, and the speaker
  classification that trains verification embeddings) with ``ClassificationBrain``;
* ``train_asr_probe``: CTC ASR over characters or SentencePiece units with ``CTCProbeBrain``
  (the validation and test reports of ``brq_att_alt.asr.CTCBrain``, shared with CTC fine-tuning);
* ``write_metrics``: the run's final numbers in ``<output_folder>/mp3s_metrics.json``
  (``METRICS_FILE``, read by ``recipes/MP3S/run_all.py``).

YAML keys every probe recipe has: ``probe_name`` (the one name of the probe), ``dataset``
(``synthetic`` | ``real``), ``data_folder``, ``pretrained_path``, ``encoder``,
``weighted_sum``, ``modules``, ``probe_optimizer`` and ``weights_optimizer`` (optimiser
classes taking the parameters), ``lr_annealing_probe`` and ``lr_annealing_weights``
(a scheduler or null), ``annealing_metric`` (``loss`` or ``error_rate``: the validation
figure NewBob watches), ``epoch_counter``, ``checkpointer``, ``train_logger``,
``output_folder``, ``save_folder``, ``sample_rate``, ``max_duration`` (training utterances
longer than this are left out), ``<split>_subset``, ``train_dataloader_opts``,
``valid_dataloader_opts``, ``test_dataloader_opts``; optional ``crop_seconds`` (training and
validation utterances read as random crops of that length, as MP3S's VoxCeleb recipes).
"""

import json
import logging
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import speechbrain as sb
import torch
import torch.nn.functional as F

from speechbrain.nnet.schedulers import NewBobScheduler, update_learning_rate

from ..asr import CTCBrain, decoding_lm
from ..data.datasets import audio_dataset
from ..hparams import load_hparams
from ..ngram import read_transcripts
from ..text import DEFAULT_CHARS, CharTokenizer, SentencePieceTokenizer, load_tokenizer
from ..training import FaultTolerantBrain, module_summary, start_experiment
from .compare import accuracy_ci

logger = logging.getLogger(__name__)

METRICS_FILE = "mp3s_metrics.json"


# ------------------------------------------------------------------ experiment
def run_configuration(hparams) -> dict:
    """What a resumed probe run must share with the run in its output folder: the encoder
    config and its initialisation (``pretrained``, or ``random:<seed>`` for the random-initialised
    twin), the exact pre-trained checkpoint (the encoder is frozen: its weights come from
    there every time), the probe name, and the class / size / parameter shapes of every
    trainable module of the YAML (``probe_class`` arguments for the ASR probes, built later)."""
    encoder = hparams["encoder"]
    checkpoint = getattr(encoder, "checkpoint", None)
    config = {
        "recipe": "MP3S",
        "probe_name": hparams.get("probe_name"),
        "encoder": encoder.config,
        "pretrained_checkpoint": str(Path(checkpoint).resolve()) if checkpoint is not None else None,
        "modules": {name: module_summary(m) for name, m in hparams["modules"].items() if name != "encoder"},
    }
    init = getattr(encoder, "init", "pretrained")
    if init != "pretrained":  # recorded only then: records written before the twin existed stay valid
        config["encoder_init"] = init
    probe_class = hparams.get("probe_class")
    if probe_class is not None:
        config["probe_class"] = {"class": getattr(getattr(probe_class, "func", probe_class), "__name__", "?"),
                                 "args": dict(getattr(probe_class, "keywords", {}))}
    return config


def start_probe_experiment(argv=None) -> Tuple[str, object, object, dict]:
    """``load_hparams(argv)``, then ``start_experiment`` with the probe's ``run_configuration``
    (nothing is written if it refuses); returns (hparams_file, run_opts, overrides, hparams)."""
    hparams_file, run_opts, overrides, hparams = load_hparams(argv)
    start_experiment(hparams, hparams_file, overrides, run_configuration(hparams))
    return hparams_file, run_opts, overrides, hparams


# ------------------------------------------------------------------ data
def probe_dataset(hparams, csv_path, split: Optional[str] = None):
    """``audio_dataset`` of a manifest with the YAML's ``sample_rate`` and ``<split>_subset``,
    sorted by duration; the ``train`` split without the utterances longer than
    ``max_duration`` (MP3S filters the training set only), ``train`` and ``valid`` read as
    random crops of ``crop_seconds`` when that is set."""
    subset = hparams.get(f"{split}_subset") if split else None
    crop = hparams.get("crop_seconds") if split in ("train", "valid") else None
    if crop and hparams.get("cache_hidden", False):
        raise ValueError("cache_hidden keeps the first pass's hidden states, but crop_seconds draws a new random "
                         "crop every epoch: set cache_hidden: False (or crop_seconds: null)")
    max_duration = hparams.get("max_duration") if split == "train" else None
    return audio_dataset(csv_path, hparams["sample_rate"], max_duration=max_duration, subset=subset,
                         crop_seconds=crop)


def label_pipeline(data_list, key: str, encoder, save_path):
    """Add ``label_encoded`` from column ``key`` to every dataset; fit / load the encoder on the first."""

    @sb.utils.data_pipeline.takes(key)
    @sb.utils.data_pipeline.provides("label", "label_encoded")
    def pipeline(value):
        yield value
        yield encoder.encode_label_torch(value)

    sb.dataio.dataset.add_dynamic_item(data_list, pipeline)
    Path(save_path).parent.mkdir(parents=True, exist_ok=True)
    encoder.load_or_create(path=str(save_path), from_didatasets=[data_list[0]], output_key="label")
    return encoder


# ------------------------------------------------------------------ brains
_SHARED_HIDDEN_CACHES: Dict[tuple, Dict[str, torch.Tensor]] = {}


def _encoder_key(encoder) -> tuple:
    """What identifies a frozen encoder's weights: its checkpoint folder or random-twin seed, and
    its configuration; an encoder of neither kind (built in memory) is only itself."""
    encoder = getattr(encoder, "module", encoder)
    checkpoint, init = getattr(encoder, "checkpoint", None), getattr(encoder, "init", "pretrained")
    if checkpoint is None and init == "pretrained":
        return ("object", id(encoder))
    config = json.dumps(getattr(encoder, "config", {}), sort_keys=True, default=str)
    return (str(Path(checkpoint).resolve()) if checkpoint is not None else None, init, config)


class ProbeBrain(FaultTolerantBrain):
    """Frozen encoder (``modules.encoder``) + ``modules.weighted_sum`` + a probe."""

    def encode(self, batch):
        """(features (B, T', d) from the weighted layer sum, relative lengths (B,)).

        With ``cache_hidden: True`` in the YAML, every utterance's hidden states are
        kept in memory after its first pass (the encoder is frozen, deterministic and
        padding-invariant), so later epochs skip the encoder: for small data only. The cache
        is shared by the probes of the process that use the same weights (``_hidden_cache``).
        """
        wavs, wav_lens = batch.sig
        cache = self._hidden_cache() if getattr(self.hparams, "cache_hidden", False) else None
        if cache is not None and all(uid in cache for uid in batch.id):
            items = [cache[uid] for uid in batch.id]
            T = max(h.shape[1] for h in items)
            stacked = wavs.new_zeros(items[0].shape[0], len(items), T, items[0].shape[2])
            for i, h in enumerate(items):
                stacked[:, i, : h.shape[1]] = h.to(wavs.device)
            lens = torch.tensor([h.shape[1] / T for h in items], device=wavs.device)
            return self.modules.weighted_sum(stacked), lens
        with torch.no_grad():
            _, padding_mask, hidden = self.modules.encoder.encode(wavs, wav_lens, hidden=True)
            hidden = torch.stack([h.detach() for h in hidden], dim=0)
        valid = (~padding_mask).sum(dim=1)
        if cache is not None:
            for i, uid in enumerate(batch.id):
                cache[uid] = hidden[:, i, : int(valid[i])].cpu().clone()
        feats = self.modules.weighted_sum(hidden)
        lens = valid.float() / max(padding_mask.shape[1], 1)
        return feats, lens

    def _hidden_cache(self) -> Dict[str, torch.Tensor]:
        """{utterance id: hidden states} of this encoder, shared by every ProbeBrain of the process
        whose encoder has the same weights (same checkpoint, or same random-twin seed, and same
        configuration): the folds of a task (IEMOCAP) encode each utterance once."""
        if not hasattr(self, "_cache"):
            self._cache = _SHARED_HIDDEN_CACHES.setdefault(_encoder_key(self.modules.encoder), {})
        return self._cache

    def init_optimizers(self):
        """MP3S's two optimisers: ``probe_optimizer`` over the probe's (and classifier's)
        trainable parameters, ``weights_optimizer`` over the layer weights (the frozen
        encoder has none). Both, and their NewBob schedulers, are checkpointed."""
        weights = [p for p in self.modules.weighted_sum.parameters() if p.requires_grad]
        taken = {id(p) for p in weights}
        probe = [p for p in self.modules.parameters() if p.requires_grad and id(p) not in taken]
        if not probe:
            raise ValueError("The probe has no trainable parameter: check the YAML's modules")
        self.probe_optimizer = self.hparams.probe_optimizer(probe)
        self.weights_optimizer = self.hparams.weights_optimizer(weights)
        self.optimizers_dict = {"probe_optimizer": self.probe_optimizer, "weights_optimizer": self.weights_optimizer}
        if self.checkpointer is not None:
            for name, optimizer in self.optimizers_dict.items():
                self.checkpointer.add_recoverable(name, optimizer)
            for part, scheduler in self.schedulers().items():
                if isinstance(scheduler, NewBobScheduler):  # per-epoch schedulers have no state
                    self.checkpointer.add_recoverable(f"{part}_scheduler", scheduler)

    def schedulers(self) -> Dict[str, object]:
        """{"probe": the YAML's ``lr_annealing_probe``, "weights": ``lr_annealing_weights``} (None: constant)."""
        return {part: getattr(self.hparams, f"lr_annealing_{part}", None) for part in ("probe", "weights")}

    def anneal(self, valid_stats: Dict[str, float], epoch: int) -> Dict[str, float]:
        """End of an epoch's validation: each optimiser's scheduler gives its next learning
        rate (a ``NewBobScheduler`` from the validation ``annealing_metric``, another scheduler,
        e.g. ``LinearScheduler``, from the epoch; None keeps it). Returns the learning rates
        the epoch was trained with, ``{"lr_probe": ..., "lr_weights": ...}``."""
        metric_name = self.hparams.annealing_metric
        if metric_name not in valid_stats:
            raise ValueError(f"annealing_metric {metric_name!r} is not a validation figure of this probe "
                             f"({sorted(valid_stats)})")
        used = {}
        for part, scheduler in self.schedulers().items():
            optimizer = getattr(self, f"{part}_optimizer")
            old = new = optimizer.param_groups[0]["lr"]
            if isinstance(scheduler, NewBobScheduler):
                old, new = scheduler(valid_stats[metric_name])
            elif scheduler is not None:
                old, new = scheduler(epoch)
            update_learning_rate(optimizer, new)
            used[f"lr_{part}"] = old
        return used

    def log_epoch(self, stage_stats, epoch, valid_stats, lrs: Dict[str, float]):
        weights = [round(w, 4) for w in self.modules.weighted_sum.normalized_weights().tolist()]
        self.hparams.train_logger.log_stats(
            stats_meta={"epoch": epoch, **lrs, "layer_weights": weights},
            train_stats=stage_stats, valid_stats=valid_stats,
        )


class ClassificationBrain(ProbeBrain):
    """Utterance classification: ``probe(x, lens)`` -> logits (or embeddings -> ``classifier``).

    YAML keys used: ``label_encoder`` (CategoricalEncoder, output key ``label``),
    optional module ``classifier`` (after an embedding probe: SpeechBrain's
    ``Xvector.Classifier``, which gives log-probabilities, or ``ECAPA_TDNN.Classifier``, which
    gives cosines), optional ``loss`` (callable(logits (B,1,C), targets (B,1)) e.g.
    AAM-softmax; default cross-entropy of the logits, i.e. the NLL of log-probabilities).
    Validation figures: ``loss``, ``acc`` and ``error_rate`` (1 - acc, what NewBob watches
    in MP3S's classification recipes); the best checkpoint has the highest ``acc``. After
    ``evaluate``, ``test_items`` maps every test utterance to whether it was classified right
    (``accuracy_metric`` makes the metric and its confidence interval from it).
    """

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        feats, lens = self.encode(batch)
        out = self.modules.probe(feats, lens)
        if "classifier" in self.modules:
            out = self.modules.classifier(out)
        return out.squeeze(1) if out.dim() == 3 else out  # SpeechBrain's classifiers: (B, 1, C)

    def compute_objectives(self, logits, batch, stage):
        targets = batch.label_encoded.data.view(-1)
        loss_fn = getattr(self.hparams, "loss", None)
        if loss_fn is not None:
            loss = loss_fn(logits.unsqueeze(1), targets.unsqueeze(1))
        else:
            loss = F.cross_entropy(logits, targets)
        if stage != sb.Stage.TRAIN:
            hits = (logits.argmax(-1) == targets).view(-1)
            self.correct += hits.sum().item()
            self.total += targets.numel()
            if stage == sb.Stage.TEST:
                self.test_items.update(zip(map(str, batch.id), hits.tolist()))
        return loss

    def on_stage_start(self, stage, epoch=None):
        self.correct, self.total = 0, 0
        if stage == sb.Stage.TEST:
            self.test_items: Dict[str, bool] = {}  # utterance id -> correct (the interval's test items)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        stats = {"loss": stage_loss}
        if stage != sb.Stage.TRAIN:
            stats["acc"] = self.correct / max(self.total, 1)
            stats["error_rate"] = 1.0 - stats["acc"]
        if stage == sb.Stage.TRAIN:
            self.train_stats = {**stats, **self.skip_stats()}
        elif stage == sb.Stage.VALID:
            self.log_epoch(self.train_stats, epoch, stats, self.anneal(stats, epoch))
            self.checkpointer.save_and_keep_only(meta={"acc": stats["acc"]}, max_keys=["acc"])
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current}, test_stats=stats
            )
            self.test_stats = stats

    @torch.no_grad()
    def embeddings(self, dataset, loader_kwargs) -> Dict[str, torch.Tensor]:
        """{utterance id: the probe's output} with the best (validation accuracy) checkpoint."""
        self.on_evaluate_start(max_key="acc")
        self.modules.eval()
        out = {}
        for batch in self.make_dataloader(dataset, sb.Stage.TEST, **loader_kwargs):
            batch = batch.to(self.device)
            feats, lens = self.encode(batch)
            for uid, emb in zip(batch.id, self.modules.probe(feats, lens).cpu()):
                out[uid] = emb
        return out


def train_classifier(hparams, run_opts, paths: Mapping[str, str], label_key: str,
                     test: bool = True) -> Tuple[ClassificationBrain, Optional[float]]:
    """Train ``modules.probe`` (+ ``classifier``) on the labels of column ``label_key`` of the
    ``train`` / ``valid`` manifests of ``paths``; with ``test``, evaluate the best (validation
    accuracy) checkpoint on ``test``. Returns (brain, test accuracy as a fraction, or None)."""
    names = ("train", "valid", "test") if test else ("train", "valid")
    data = {name: probe_dataset(hparams, paths[name], name) for name in names}
    label_pipeline(list(data.values()), label_key, hparams["label_encoder"],
                   Path(hparams["save_folder"]) / "label_encoder.txt")
    sb.dataio.dataset.set_output_keys(list(data.values()), ["id", "sig", "label_encoded"])
    brain = ClassificationBrain(modules=hparams["modules"], hparams=hparams, run_opts=run_opts,
                                checkpointer=hparams["checkpointer"])
    brain.fit(brain.hparams.epoch_counter, data["train"], data["valid"],
              train_loader_kwargs=hparams["train_dataloader_opts"],
              valid_loader_kwargs=hparams["valid_dataloader_opts"])
    if not test:
        return brain, None
    brain.evaluate(data["test"], max_key="acc", test_loader_kwargs=hparams["test_dataloader_opts"])
    return brain, brain.test_stats["acc"]


def accuracy_metric(correct: Sequence[bool], hparams: Optional[Mapping] = None) -> dict:
    """The accuracy metric of ``write_metrics`` from per-test-item correctness: ``value`` in %, its
    ``ci95`` (percentile bootstrap over the test items, ``compare.accuracy_ci``; ``confidence``
    and ``bootstrap_samples`` of ``hparams`` when given, else 0.95 and 1000) and ``test_items``."""
    hparams = hparams or {}
    confidence = float(hparams.get("confidence", 0.95))
    value, low, high = accuracy_ci(correct, confidence, int(hparams.get("bootstrap_samples", 1000)))
    return {"value": 100.0 * value, "direction": "higher", "unit": "%", "ci95": [100.0 * low, 100.0 * high],
            "confidence": confidence, "test_items": len(correct)}


# ------------------------------------------------------------------ ASR probes
class CTCProbeBrain(CTCBrain, ProbeBrain):
    """probe(x, lens) -> (B, T', vocab) logits; CTC; best checkpoint = lowest validation WER.
    Validation figures: ``loss`` (what NewBob watches in MP3S's ASR recipes) and ``WER``."""

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        feats, lens = self.encode(batch)
        return torch.log_softmax(self.modules.probe(feats, lens), dim=-1), lens

    def end_of_validation(self, stats, epoch):
        self.log_epoch(self.train_stats, epoch, stats, self.anneal(stats, epoch))
        self.checkpointer.save_and_keep_only(meta={"WER": stats["WER"]}, min_keys=["WER"])


def probe_tokenizer(hparams, train_csv):
    """The CTC vocabulary of ``token_type`` (default ``char``): characters, LibriSpeech's
    (``char_set: english``) or (``from_data``) the symbols of the training transcripts; or
    ``bpe`` (MP3S Common Voice): a SentencePiece BPE model of ``output_neurons`` units with
    ``character_coverage``, trained on the training transcripts (``SentencePieceTokenizer``).
    Made once, saved in ``<save_folder>/tokenizer.json`` and read back after."""
    path = Path(hparams["save_folder"]) / "tokenizer.json"
    if path.is_file():
        return load_tokenizer(path)
    token_type = hparams.get("token_type", "char")
    if token_type == "bpe":
        tokenizer = SentencePieceTokenizer.train(train_csv, Path(hparams["save_folder"]) / "tokenizer",
                                                 vocab_size=hparams["output_neurons"], model_type="bpe",
                                                 character_coverage=hparams["character_coverage"])
        tokenizer.save(path)
        return tokenizer
    if token_type != "char":
        raise ValueError(f"token_type must be 'char' or 'bpe', got {token_type!r}")
    if hparams["char_set"] == "from_data":
        chars = sorted({c for t in read_transcripts(train_csv) for c in t.upper() if not c.isspace()})
    elif hparams["char_set"] == "english":
        chars = list(DEFAULT_CHARS)
    else:
        raise ValueError(f"char_set must be 'english' or 'from_data', got {hparams['char_set']!r}")
    tokenizer = CharTokenizer(chars)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(path)
    return tokenizer


def train_asr_probe(hparams, run_opts, paths) -> Tuple[Dict[str, dict], dict]:
    """Train the CTC probe (``probe_class`` built for the vocabulary), decode every test set
    (greedy; a CTC beam search without LM with ``test_beam_search``; with the LM of
    ``decoding_lm`` too). ``paths``: {"train": csv, "valid": csv, "test": {name: csv}}.
    Returns the ``metrics`` ({"WER <test>", "WER <test> beam", "WER <test> +LM": ...}) and
    ``extra`` (LM used, vocabulary) arguments of ``write_metrics``."""
    tokenizer = probe_tokenizer(hparams, paths["train"])
    hparams["tokenizer"] = tokenizer
    hparams["lm_path"] = decoding_lm(hparams["lm_path"], hparams["build_lm"], paths["train"],
                                     hparams["output_folder"], hparams["lm_order"])
    probe = hparams["probe_class"](input_size=hparams["encoder_dim"], n_outputs=tokenizer.vocab_size)
    hparams["modules"]["probe"] = probe
    hparams["checkpointer"].add_recoverable("probe", probe)
    train = probe_dataset(hparams, paths["train"], "train")
    valid = probe_dataset(hparams, paths["valid"], "valid")
    tests = {name: probe_dataset(hparams, p, "test") for name, p in paths["test"].items()}

    @sb.utils.data_pipeline.takes("wrd")
    @sb.utils.data_pipeline.provides("wrd", "tokens")
    def text_pipeline(wrd):
        yield wrd
        yield tokenizer.encode(wrd)

    every = [train, valid, *tests.values()]
    sb.dataio.dataset.add_dynamic_item(every, text_pipeline)
    sb.dataio.dataset.set_output_keys(every, ["id", "sig", "wrd", "tokens"])
    brain = CTCProbeBrain(modules=hparams["modules"], hparams=hparams, run_opts=run_opts,
                          checkpointer=hparams["checkpointer"])
    brain.fit(brain.hparams.epoch_counter, train, valid, train_loader_kwargs=hparams["train_dataloader_opts"],
              valid_loader_kwargs=hparams["valid_dataloader_opts"])
    for name, data in tests.items():
        brain.test_name = name
        brain.evaluate(data, min_key="WER", test_loader_kwargs=hparams["test_dataloader_opts"])
    metrics = {}
    for name, results in brain.test_results.items():
        for decoding, suffix in (("greedy", ""), ("beam", " beam"), ("lm", " +LM")):
            if decoding in results:
                r = results[decoding]
                metrics[f"WER {name}{suffix}"] = {"value": r["wer"], "direction": "lower", "unit": "%",
                                                  "ci95": [r["ci_low"], r["ci_high"]]}
    extra = {"lm_path": hparams["lm_path"] if brain.lm_decoder is not None else None, "vocab": tokenizer.labels}
    return metrics, extra


# ------------------------------------------------------------------ results
def write_metrics(hparams, task: str, metrics: Dict[str, dict], extra: Optional[dict] = None) -> Path:
    """Write ``<output_folder>/mp3s_metrics.json``: task, ``probe_name``, dataset, mixer,
    pre-trained path, ``encoder_init`` (``pretrained`` or ``random:<seed>``), ``metrics`` ({name: {"value": float, "direction": "lower"|"higher",
    "unit": "%"|...}}), the final layer weights, and ``extra``."""
    out = {
        "task": task,
        "probe": hparams["probe_name"],
        "dataset": hparams["dataset"],
        "mixer": hparams["encoder"].mixer,
        "pretrained_path": str(hparams["pretrained_path"]),
        "encoder_init": getattr(hparams["encoder"], "init", "pretrained"),
        "metrics": metrics,
        "layer_weights": [round(w, 4) for w in hparams["weighted_sum"].normalized_weights().tolist()],
    }
    if extra:
        out.update(extra)
    path = Path(hparams["output_folder"]) / METRICS_FILE
    path.write_text(json.dumps(out, indent=2))
    logger.info("MP3S %s / %s: %s -> %s", task, hparams["probe_name"], metrics, path)
    return path


__all__: List[str] = [
    "CTCProbeBrain", "accuracy_metric", "ClassificationBrain", "METRICS_FILE", "ProbeBrain", "label_pipeline", "probe_dataset",
    "probe_tokenizer", "run_configuration", "start_probe_experiment", "train_asr_probe", "train_classifier",
    "write_metrics",
]
