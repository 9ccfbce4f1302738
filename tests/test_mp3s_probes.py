"""MP3S library: weighted layer sum, probe heads (and their sizes against SpeechBrain's
reference architectures), frozen encoder, EER / WER by hand."""

import math

import pytest
import torch

from brq_att_alt.data.voxceleb import read_trial_list, write_trial_list
from brq_att_alt.hparams import load_hparams
from brq_att_alt.probes import (
    ECAPAHead, FrameBiLSTM, FrameContextNet, FrameLinear, FrameMLP, PooledBiLSTM, PooledLinear,
    WeightedLayerSum, XvectorHead, compute_eer, compute_min_dcf, cosine_score, score_trials,
)
from helpers import MP3S, TINY_MODEL, save_run


# ----------------------------------------------------------------- weighted sum
def test_weighted_sum_starts_as_the_mean_and_weights_are_a_softmax():
    ws = WeightedLayerSum(3)
    assert not ws.layer_norm  # MP3S mixes the raw hidden states
    hidden = [torch.full((2, 4, 5), float(v)) for v in (1.0, 2.0, 6.0)]
    assert torch.allclose(ws(hidden), torch.full((2, 4, 5), 3.0))
    with torch.no_grad():
        ws.weights.copy_(torch.tensor([0.0, math.log(2.0), math.log(5.0)]))  # softmax -> 1/8, 2/8, 5/8
    assert torch.allclose(ws.normalized_weights(), torch.tensor([1 / 8, 2 / 8, 5 / 8]))
    assert torch.allclose(ws(hidden), torch.full((2, 4, 5), (1 + 4 + 30) / 8))
    assert torch.allclose(ws(torch.stack(hidden)), ws(hidden))  # stacked input too
    assert ws.normalized_weights().sum().item() == pytest.approx(1.0)


def test_weighted_sum_layer_weights_receive_gradients():
    torch.manual_seed(0)
    ws = WeightedLayerSum(4, layer_norm=True)
    hidden = [torch.randn(2, 7, 8) * (i + 1) for i in range(4)]
    target = hidden[2].detach()
    loss = ((ws(hidden) - torch.nn.functional.layer_norm(target, (8,))) ** 2).mean()
    loss.backward()
    assert ws.weights.grad is not None
    assert ws.weights.grad.abs().sum() > 0
    # one step of gradient descent moves weight towards the matching layer
    with torch.no_grad():
        ws.weights -= 10.0 * ws.weights.grad
    assert ws.normalized_weights().argmax().item() == 2


def test_weighted_sum_layer_norm_and_errors():
    ws = WeightedLayerSum(2, layer_norm=True)
    hidden = [torch.randn(1, 3, 16) * 100 + 50, torch.randn(1, 3, 16) * 0.01]
    out = ws(hidden)
    normed = [torch.nn.functional.layer_norm(h, (16,)) for h in hidden]
    assert torch.allclose(out, (normed[0] + normed[1]) / 2, atol=1e-5)
    with pytest.raises(ValueError, match="expects 2 hidden states"):
        ws([hidden[0]])
    with pytest.raises(ValueError):
        WeightedLayerSum(0)


# ----------------------------------------------------------------------- heads
def _padded(x, valid, garbage=100.0):
    """x (B, T, d) with frames past ``valid`` (list) replaced by garbage; relative lengths."""
    x = x.clone()
    T = x.shape[1]
    for b, n in enumerate(valid):
        x[b, n:] = garbage
    return x, torch.tensor([n / T for n in valid])


@pytest.mark.parametrize("head", [
    lambda: PooledLinear(8, 3),
    lambda: PooledLinear(8, 3, bias=False),
    lambda: PooledBiLSTM(8, 3, hidden_size=6, num_layers=2, dropout=0.0),
    lambda: PooledBiLSTM(8, 3, hidden_size=8, num_layers=2, dropout=0.0, projection=8, bias=False),
])
def test_utterance_heads_ignore_padding(head):
    torch.manual_seed(0)
    h = head().eval()
    x = torch.randn(1, 6, 8)
    alone = h(x, torch.ones(1))
    padded, lens = _padded(torch.cat([x, torch.randn(1, 4, 8)], 1).repeat(2, 1, 1), [6, 10])
    out = h(padded, lens)
    assert out.shape == (2, 3)
    assert torch.allclose(out[0], alone[0], atol=1e-5)


def test_heads_shapes():
    torch.manual_seed(0)
    x, lens = torch.randn(3, 20, 16), torch.tensor([1.0, 0.7, 0.4])
    assert FrameLinear(16, 30)(x, lens).shape == (3, 20, 30)
    assert FrameLinear(16, 30, bias=False).out.bias is None
    assert FrameMLP(16, 30, hidden_size=8)(x, lens).shape == (3, 20, 30)
    assert FrameBiLSTM(16, 30, hidden_size=8)(x, lens).shape == (3, 20, 30)
    assert FrameBiLSTM(16, 30, hidden_size=8, projection=5).out.in_features == 5
    cn = FrameContextNet(16, 30, out_channels=16, conv_channels=[16, 16], num_blocks=2, num_layers=2)
    assert cn(x, lens).shape == (3, 20, 30)  # stride 1: one output per encoder frame
    xv = XvectorHead(16, emb_dim=12, tdnn_channels=(16, 16, 16, 16, 32))
    assert xv(x, lens).shape == (3, 12)
    ec = ECAPAHead(16, emb_dim=12, channels=(16, 16, 16, 16, 48), attention_channels=8, se_channels=8)
    assert ec(x, lens).shape == (3, 12)
    with pytest.raises(ValueError, match="1 entries for 2 blocks"):
        FrameContextNet(16, 30, conv_channels=[16], num_blocks=2)
    with pytest.raises(ValueError, match="give conv_channels"):
        FrameContextNet(16, 30, num_blocks=2)  # SpeechBrain's default channels are for 21 blocks


def test_frame_bilstm_has_no_dropout_after_the_lstm():
    """MP3S's SpeechBrain LSTM drops between its layers only: in train mode, the output layer
    reads the LSTM's output as it is."""
    torch.manual_seed(0)
    head = FrameBiLSTM(8, 5, hidden_size=6, num_layers=2, dropout=0.5).train()
    x = torch.randn(2, 7, 8)
    torch.manual_seed(1)
    out = head(x)
    torch.manual_seed(1)
    assert torch.allclose(out, head.out(head.rnn(x)))


# --------------------------------------------- probe sizes against MP3S's references
D_MP3S = 576  # the MHSA base encoder's width, where FIDELITY.md counted the references


def _reference_probe(task, probe):
    """The probe of MP3S / the authors' ssl_brq.yaml built from SpeechBrain's classes, at
    encoder width 576 (LibriSpeech: 30 outputs, MP3S's characters + blank + unk; Common
    Voice: 100 BPE units; VoxCeleb1: 1211 speakers; SLURP: 18 scenarios; IEMOCAP: 4)."""
    from speechbrain.lobes.models.ContextNet import ContextNet
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    from speechbrain.lobes.models.ECAPA_TDNN import Classifier as ECAPAClassifier
    from speechbrain.lobes.models.VanillaNN import VanillaNN
    from speechbrain.lobes.models.Xvector import Classifier as XvectorClassifier
    from speechbrain.lobes.models.Xvector import Xvector
    from speechbrain.nnet.linear import Linear
    from speechbrain.nnet.RNN import LSTM

    d, shape = D_MP3S, [None, None, D_MP3S]
    ecapa = dict(input_size=d, channels=[512, 512, 512, 512, 1536], kernel_sizes=[5, 3, 3, 3, 1],
                 dilations=[1, 2, 3, 4, 1], groups=[1, 1, 1, 1, 1], attention_channels=64)
    bilstm = dict(input_shape=shape, num_layers=2, bidirectional=True, dropout=0.2, hidden_size=1024)
    parts = {
        ("LibriSpeech_ASR", "BiLSTM"): lambda: [LSTM(**bilstm), Linear(input_size=2048, n_neurons=30)],
        ("LibriSpeech_ASR", "ContextNet"): lambda: [ContextNet(input_shape=shape, strides=[1] * 21),
                                                    Linear(input_size=640, n_neurons=30)],
        ("CommonVoice_ASR", "BiLSTM"): lambda: [LSTM(**bilstm), Linear(input_size=2048, n_neurons=100)],
        ("CommonVoice_ASR", "linear"): lambda: [
            VanillaNN(input_shape=shape, activation=torch.nn.Sigmoid, dnn_blocks=1, dnn_neurons=1024),
            Linear(input_size=1024, n_neurons=100)],
        ("VoxCeleb1_SV", "Xvector"): lambda: [
            Xvector(in_channels=d, activation=torch.nn.LeakyReLU, tdnn_blocks=5,
                    tdnn_channels=[512, 512, 512, 512, 1500], tdnn_kernel_sizes=[5, 3, 3, 1, 1],
                    tdnn_dilations=[1, 2, 3, 1, 1], lin_neurons=512),
            XvectorClassifier(input_shape=[None, None, 512], activation=torch.nn.LeakyReLU, lin_blocks=1,
                              lin_neurons=512, out_neurons=1211)],
        ("VoxCeleb1_SV", "ECAPA"): lambda: [ECAPA_TDNN(**ecapa, lin_neurons=512),
                                            ECAPAClassifier(input_size=512, out_neurons=1211)],
        ("SLURP_IC", "linear"): lambda: [Linear(input_size=d, n_neurons=18, bias=False)],
        ("SLURP_IC", "BiLSTM"): lambda: [
            LSTM(input_size=d, bidirectional=True, hidden_size=d, num_layers=2),
            Linear(input_size=2 * d, n_neurons=d), Linear(input_size=d, n_neurons=18, bias=False)],
        ("IEMOCAP_ER", "linear"): lambda: [Linear(input_size=d, n_neurons=4, bias=False)],
        ("IEMOCAP_ER", "ECAPA"): lambda: [ECAPA_TDNN(**ecapa, lin_neurons=96),
                                          ECAPAClassifier(input_size=96, out_neurons=4)],
    }
    return torch.nn.ModuleList(parts[(task, probe)]())


# the sizes recipes/MP3S/README.md gives (millions, rounded): the probe without its speaker /
# emotion classifier, and that classifier
REFERENCE_MILLIONS = {("LibriSpeech_ASR", "BiLSTM"): (38.4,), ("LibriSpeech_ASR", "ContextNet"): (32.4,),
                      ("CommonVoice_ASR", "BiLSTM"): (38.5,), ("CommonVoice_ASR", "linear"): (0.7,),
                      ("VoxCeleb1_SV", "Xvector"): (5.6, 0.9), ("VoxCeleb1_SV", "ECAPA"): (8.1, 0.6),
                      ("SLURP_IC", "BiLSTM"): (14.0,), ("IEMOCAP_ER", "ECAPA"): (6.8, 0.0)}
OUTPUTS = {"LibriSpeech_ASR": 30, "CommonVoice_ASR": 100}


@pytest.fixture(scope="module")
def encoder_576(tmp_path_factory):
    """A pre-training run whose encoder is 576 wide (one small layer: only the width matters here)."""
    from brq_att_alt.model import BestRQModel

    model = BestRQModel("mhsa", d_model=D_MP3S, num_layers=1, nhead=8, d_ffn=64, kernel_size=3, codebook_size=16)
    return save_run(model, tmp_path_factory.mktemp("encoder_576") / "save").parent


@pytest.mark.parametrize("task, probe", [("LibriSpeech_ASR", "BiLSTM"), ("LibriSpeech_ASR", "ContextNet"),
                                         ("CommonVoice_ASR", "BiLSTM"), ("CommonVoice_ASR", "linear"),
                                         ("VoxCeleb1_SV", "Xvector"), ("VoxCeleb1_SV", "ECAPA"),
                                         ("SLURP_IC", "linear"), ("SLURP_IC", "BiLSTM"),
                                         ("IEMOCAP_ER", "linear"), ("IEMOCAP_ER", "ECAPA")])
def test_probe_yaml_has_the_reference_size(task, probe, encoder_576, tmp_path):
    """Each recipe YAML's probe (+ classifier) at encoder width 576 has exactly the parameters
    of MP3S's architecture built from SpeechBrain's classes with the reference arguments."""
    yaml = MP3S / task / probe / "hparams" / f"{probe}.yaml"
    hparams = load_hparams([str(yaml), f"--pretrained_path={encoder_576}", f"--output_folder={tmp_path}"])[3]
    assert hparams["encoder_dim"] == D_MP3S
    assert not hparams["weighted_sum"].layer_norm
    if task in OUTPUTS:
        modules = [hparams["probe_class"](input_size=D_MP3S, n_outputs=OUTPUTS[task])]
    else:
        modules = [hparams["probe"]] + ([hparams["classifier"]] if "classifier" in hparams else [])
    ours = sum(p.numel() for m in modules for p in m.parameters())
    reference = sum(p.numel() for p in _reference_probe(task, probe).parameters())
    assert ours == reference
    if (task, probe) in REFERENCE_MILLIONS:
        millions = tuple(round(sum(p.numel() for p in m.parameters()) / 1e6, 1) for m in modules)
        assert millions == REFERENCE_MILLIONS[(task, probe)]


# --------------------------------------------------------------- training protocol
def test_anneal_steps_each_schedule_and_refuses_an_unknown_figure():
    """ProbeBrain.anneal: a per-epoch schedule (LinearScheduler) follows the epoch, NewBob the
    validation figure (threshold 0.25 %), None keeps the rate; returns the rates just used."""
    from types import SimpleNamespace

    from speechbrain.nnet.schedulers import LinearScheduler, NewBobScheduler

    from brq_att_alt.probes.training import ProbeBrain

    param = torch.nn.Parameter(torch.zeros(1))
    brain = SimpleNamespace(
        probe_optimizer=torch.optim.Adam([param], lr=1e-3), weights_optimizer=torch.optim.Adam([param], lr=0.01),
        hparams=SimpleNamespace(annealing_metric="error_rate", lr_annealing_probe=LinearScheduler(1e-3, 1e-4, 5),
                                lr_annealing_weights=None))
    for name in ("anneal", "schedulers"):
        setattr(brain, name, getattr(ProbeBrain, name).__get__(brain))
    lrs = lambda: (brain.probe_optimizer.param_groups[0]["lr"], brain.weights_optimizer.param_groups[0]["lr"])  # noqa: E731
    assert brain.anneal({"error_rate": 0.5}, 1) == {"lr_probe": pytest.approx(1e-3), "lr_weights": 0.01}
    assert lrs() == (pytest.approx(7.75e-4), 0.01)  # 1e-3 -> 1e-4 in 4 equal steps
    brain.hparams.lr_annealing_weights = NewBobScheduler(0.01, annealing_factor=0.9, improvement_threshold=0.0025)
    brain.anneal({"error_rate": 0.5}, 2)  # NewBob's first figure: nothing to compare with
    assert lrs() == (pytest.approx(5.5e-4), 0.01)
    brain.anneal({"error_rate": 0.4995}, 3)  # 0.1 % better: below the threshold, annealed
    assert lrs()[1] == pytest.approx(0.009)
    brain.anneal({"error_rate": 0.4}, 4)  # 20 % better: kept
    assert lrs() == (pytest.approx(1e-4), pytest.approx(0.009))
    brain.hparams.annealing_metric = "WER"
    with pytest.raises(ValueError, match="annealing_metric 'WER' is not a validation figure"):
        brain.anneal({"error_rate": 0.4, "loss": 1.0}, 5)


def test_probe_dataset_filters_training_only_and_refuses_cache_with_crops(tmp_path):
    """max_duration (Common Voice: 10 s) leaves out long *training* utterances only, as MP3S;
    random crops and the hidden-state cache cannot go together."""
    from brq_att_alt.probes.training import probe_dataset

    csv_path = tmp_path / "m.csv"
    csv_path.write_text("ID,duration,wav\na,4.0,a.wav\nb,12.0,b.wav\n")
    h = {"sample_rate": 16000, "max_duration": 10.0}
    assert len(probe_dataset(h, csv_path, "train")) == 1
    assert len(probe_dataset(h, csv_path, "valid")) == len(probe_dataset(h, csv_path, "test")) == 2
    with pytest.raises(ValueError, match="cache_hidden"):
        probe_dataset({**h, "crop_seconds": 3.0, "cache_hidden": True}, csv_path, "train")
    assert len(probe_dataset({**h, "crop_seconds": 3.0, "cache_hidden": True}, csv_path, "test")) == 2


# ------------------------------------------------------------- frozen encoder
@pytest.mark.parametrize("mixer", ["mhsa", "pom", "fastformer", "hypermixing"])
def test_frozen_encoder_bit_identical_after_probe_steps(mixer, tmp_path):
    from brq_att_alt.model import BestRQModel
    from brq_att_alt.pretrained import load_pretrained

    torch.manual_seed(0)
    folder = save_run(BestRQModel(mixer, **TINY_MODEL), tmp_path / "run" / "save")
    encoder = load_pretrained(folder.parent)  # any mixer, from the run's output folder
    assert encoder.mixer == mixer and encoder.num_hidden_states == 3
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    ws = WeightedLayerSum(encoder.num_hidden_states)
    probe = PooledLinear(encoder.d_model, 3)
    modules = torch.nn.ModuleDict({"encoder": encoder, "ws": ws, "probe": probe})
    modules.train()
    assert not encoder.training  # frozen: stays in eval mode
    # weight decay on every parameter: a frozen weight must still not move
    opt = torch.optim.AdamW(modules.parameters(), lr=0.1, weight_decay=0.5)
    torch.manual_seed(0)
    wavs, lens = torch.randn(2, 16000) * 0.1, torch.tensor([1.0, 0.6])
    for _ in range(3):
        _, mask, hidden = encoder(wavs, lens, hidden=True)
        logits = probe(ws(hidden), (~mask).sum(1) / mask.shape[1])
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert ws.weights.grad is not None and ws.weights.grad.abs().sum() > 0
    assert not torch.allclose(ws.normalized_weights(), torch.full((encoder.num_hidden_states,), 1 / encoder.num_hidden_states))
    assert all(p.grad is None for p in encoder.parameters())
    after = encoder.state_dict()
    assert set(after) == set(before)
    for k, v in before.items():
        assert torch.equal(v, after[k]), f"frozen encoder weight {k} changed"


# --------------------------------------------------------------------- EER
@pytest.mark.parametrize("pos, neg, eer, threshold", [
    ([0.9, 0.8, 0.7], [0.1, 0.2, 0.3], 0.0, 0.7),  # separated: t = lowest target score
    ([0.9, 0.4], [0.5, 0.1], 0.5, 0.5),  # t=0.5: FAR 1/2 (0.5 >= 0.5), FRR 1/2 (0.4 < 0.5)
    ([0.8, 0.6, 0.4, 0.2], [0.5, 0.3, 0.1, 0.0], 0.25, 0.4),  # t=0.4: FAR 1/4, FRR 1/4
    ([0.5, 0.5], [0.5, 0.5], 0.5, 0.5),  # no information: FAR 1 FRR 0 or FAR 0 FRR 1
    ([0.1], [0.9], 1.0, 0.9),  # inverted: t=0.9 rejects the target, accepts the impostor
    # gap tie: t=0.5 (FAR 1/2, FRR 1/4, mean 3/8) and t=0.9 (FAR 0, FRR 1/4, mean 1/8): smallest mean
    ([0.1, 0.9, 0.9, 0.9], [0.0, 0.0, 0.5, 0.5], 0.125, 0.9),
])
def test_eer_hand_worked(pos, neg, eer, threshold):
    got, t = compute_eer(pos, neg)
    assert got == pytest.approx(eer)
    assert t == pytest.approx(threshold)


def test_eer_three_to_one():
    # thresholds (FAR, FRR): 0.05 (1, 0), 0.1 (3/4, 0), 0.2 (2/4, 0), 0.3 (1/4, 0),
    # 0.6 (1/4, 1/3), 0.7 (1/4, 2/3), 0.9 (0, 2/3), inf (0, 1): smallest gap 1/12 at t=0.6
    eer, t = compute_eer([0.9, 0.6, 0.3], [0.7, 0.2, 0.1, 0.05])
    assert t == pytest.approx(0.6)
    assert eer == pytest.approx((1 / 4 + 1 / 3) / 2)


def test_eer_errors():
    with pytest.raises(ValueError, match="positive and negative"):
        compute_eer([], [0.1])
    with pytest.raises(ValueError, match="finite"):
        compute_eer([float("nan")], [0.1])
    with pytest.raises(ValueError, match="positive and negative"):
        compute_min_dcf([0.3], [])
    with pytest.raises(ValueError, match="finite"):
        compute_min_dcf([0.3], [float("inf")])


def brute_force_eer(positive_scores, negative_scores):
    """The module doc's definition, term by term: a (thresholds x trials) matrix, O(n^2)
    (the implementation before the O(n log n) one), kept as the reference."""
    pos = torch.as_tensor(list(positive_scores), dtype=torch.float64).flatten()
    neg = torch.as_tensor(list(negative_scores), dtype=torch.float64).flatten()
    thresholds = torch.cat([torch.unique(torch.cat([pos, neg])), torch.tensor([float("inf")], dtype=torch.float64)])
    far = (neg.unsqueeze(0) >= thresholds.unsqueeze(1)).double().mean(dim=1)
    frr = (pos.unsqueeze(0) < thresholds.unsqueeze(1)).double().mean(dim=1)
    gap = (far - frr).abs()
    mean = (far + frr) / 2
    best = None
    for i in range(thresholds.numel()):
        key = (gap[i].item(), mean[i].item(), thresholds[i].item())
        if best is None or key < best[0]:
            best = (key, i)
    i = best[1]
    return float(mean[i]), float(thresholds[i])


@pytest.mark.parametrize("seed", range(40))
def test_eer_matches_brute_force_reference_with_ties(seed):
    """Random small sets drawn from a few distinct values: many ties within and across lists."""
    g = torch.Generator().manual_seed(seed)
    n_pos, n_neg = (int(v) for v in torch.randint(1, 30, (2,), generator=g))
    levels = int(torch.randint(2, 12, (1,), generator=g))
    pos = (torch.randint(0, levels, (n_pos,), generator=g).double() / levels + 0.2 * (seed % 3)).tolist()
    neg = (torch.randint(0, levels, (n_neg,), generator=g).double() / levels).tolist()
    assert compute_eer(pos, neg) == brute_force_eer(pos, neg)  # exact, ties included
    as_tensors = (torch.tensor(pos, dtype=torch.float64), torch.tensor(neg, dtype=torch.float64))
    assert compute_eer(*as_tensors) == brute_force_eer(pos, neg)


def test_min_dcf_hand_worked():
    # separated: C_det 0 at t = the highest negative score (no miss: pos <= t none, no false alarm)
    assert compute_min_dcf([0.9, 0.8], [0.1, 0.2]) == (0.0, 0.2)
    # pos [0.9, 0.4], neg [0.5, 0.1], p_target 0.5: t=0.1 (0, 1/2) -> 0.25; t=0.4 (1/2, 1/2) -> 0.5;
    # t=0.5 (1/2, 0) -> 0.25; t=0.9 (1, 0) -> 0.5: minimum 0.25, first at t=0.1
    assert compute_min_dcf([0.9, 0.4], [0.5, 0.1], p_target=0.5) == (0.25, 0.1)
    # p_target 0.01: false alarms cost 99x misses: t=0.5 (miss 1/2) -> 0.005
    assert compute_min_dcf([0.9, 0.4], [0.5, 0.1]) == (pytest.approx(0.005), 0.5)
    # costly false alarms: t=0.1 -> 10 * 1/2 * 0.5 = 2.5, t=0.5 -> 1/2 * 0.5 = 0.25
    assert compute_min_dcf([0.9, 0.4], [0.5, 0.1], c_fa=10, p_target=0.5) == (0.25, 0.5)


@pytest.mark.parametrize("seed", range(20))
def test_min_dcf_matches_speechbrain(seed):
    from speechbrain.utils.metric_stats import minDCF

    g = torch.Generator().manual_seed(seed)
    n_pos, n_neg = (int(v) for v in torch.randint(2, 60, (2,), generator=g))
    pos = torch.randn(n_pos, generator=g, dtype=torch.float64) + 1.0
    neg = torch.randn(n_neg, generator=g, dtype=torch.float64)
    if seed % 2:  # ties: a few distinct values
        pos, neg = torch.round(pos * 3) / 3, torch.round(neg * 3) / 3
    p_target = (0.01, 0.05, 0.5)[seed % 3]
    ours = compute_min_dcf(pos, neg, p_target=p_target)
    theirs = minDCF(pos, neg, p_target=p_target)
    assert ours[0] == pytest.approx(theirs[0], rel=1e-6, abs=1e-9)
    assert ours[1] == pytest.approx(theirs[1])


def test_cosine_scoring_and_trial_lists(tmp_path):
    emb = {"a/1.wav": torch.tensor([1.0, 0.0]), "a/2.wav": torch.tensor([2.0, 0.1]),
           "b/1.wav": torch.tensor([0.0, 3.0])}
    assert cosine_score(emb["a/1.wav"], emb["b/1.wav"]).item() == pytest.approx(0.0)
    assert cosine_score(torch.tensor([1.0, 1.0]), torch.tensor([2.0, 2.0])).item() == pytest.approx(1.0)
    trials = [(1, "a/1.wav", "a/2.wav"), (0, "a/1.wav", "b/1.wav"), (0, "a/2.wav", "b/1.wav")]
    path = write_trial_list(trials, tmp_path / "veri_test2.txt")
    assert path.read_text().splitlines()[0] == "1 a/1.wav a/2.wav"
    assert read_trial_list(path) == trials
    pos, neg = score_trials(read_trial_list(path), emb)
    assert len(pos) == 1 and len(neg) == 2 and pos[0] > max(neg)
    assert compute_eer(pos, neg)[0] == 0.0
    with pytest.raises(KeyError, match="No embedding"):
        score_trials([(1, "a/1.wav", "c/9.wav")], emb)
    bad = tmp_path / "bad.txt"
    bad.write_text("1 a/1.wav a/2.wav\ntarget a/1.wav\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected 'label enrol test'"):
        read_trial_list(bad)
    with pytest.raises(FileNotFoundError):
        read_trial_list(tmp_path / "missing.txt")


# --------------------------------------------------------------------- WER
def test_wer_hand_worked_through_greedy_ctc():
    """The ASR probes' metric path: greedy CTC decoding then corpus WER."""
    from brq_att_alt.ctc_decoding import greedy_decode
    from brq_att_alt.text import CharTokenizer
    from brq_att_alt.wer import corpus_wer

    tok = CharTokenizer()
    # frames: A A <b> B <sp> C -> "AB C"
    ids = [tok.encode("A")[0], tok.encode("A")[0], tok.blank_index, tok.encode("B")[0], tok.space_index,
           tok.encode("C")[0]]
    log_probs = torch.full((1, 6, tok.vocab_size), -10.0)
    for t, i in enumerate(ids):
        log_probs[0, t, i] = 0.0
    hyp = greedy_decode(log_probs, torch.tensor([1.0]), tok)
    assert hyp == ["AB C"]
    # ref "AB CD E": 1 substitution (C -> CD) + 1 deletion (E) over 3 words
    wer, ops = corpus_wer(["AB CD E"], hyp)
    assert wer == pytest.approx(2 / 3)
    # corpus WER is a ratio of sums: (2 + 0) / (3 + 1)
    assert corpus_wer(["AB CD E", "X"], ["AB C", "X"])[0] == pytest.approx(0.5)
