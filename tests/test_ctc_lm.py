"""Character and SentencePiece tokenizers, CTC greedy / beam-search / LM decoding, ARPA n-gram
builder, WER + bootstrap CI."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from brq_att_alt import ctc_decoding
from brq_att_alt.ctc_decoding import BeamSearchDecoder, greedy_decode, lm_decoder_or_none, missing_lm_modules
from brq_att_alt.ngram import build_arpa, kneser_ney, main as ngram_main
from brq_att_alt.text import CharTokenizer, SentencePieceTokenizer, load_tokenizer
from brq_att_alt.wer import corpus_wer, edit_ops, wer_bootstrap_ci, wer_report
from helpers import logged_messages

TOY_TEXTS = ["the cat sat", "the cat ran", "a dog sat on the mat", "the dog ran", "the cat sat on the mat"]


# ------------------------------------------------------------------ tokenizer
def test_tokenizer_round_trip_and_layout(tmp_path):
    tok = CharTokenizer()
    assert tok.vocab_size == 29 == len(tok.labels)
    assert tok.labels[0] == tok.labels[tok.blank_index] and tok.blank_index == 0
    assert tok.labels[tok.space_index] == " "
    assert tok.labels[2:] == ["'"] + [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    text = "IT'S A NICE DAY FOR A WALK"
    ids = tok.encode(text)
    assert ids.dtype == torch.long and ids.shape == (len(text),)
    assert (ids != 0).all()
    assert tok.decode(ids) == text
    # normalisation: case, punctuation dropped, hyphen and whitespace runs -> one separator
    assert tok.decode(tok.encode("  well-known,  dog!\tbark ")) == "WELL KNOWN DOG BARK"
    # blanks are skipped by decode; ctc_collapse merges repeats first
    assert tok.decode([0, 10, 0, 3]) == tok.labels[10] + "A"
    assert tok.ctc_collapse([10, 10, 0, 10, 1, 1, 3]) == tok.labels[10] * 2 + " A"
    path = tok.save(tmp_path / "tok.json")
    assert CharTokenizer.load(path) == tok
    with pytest.raises(ValueError):
        tok.decode([99])


BPE_TEXTS = ["TURN ON THE LIGHTS IN THE KITCHEN", "PLAY SOME MUSIC PLEASE", "WHAT IS THE WEATHER TODAY",
             "SET AN ALARM FOR SEVEN", "SEND AN EMAIL TO MY MOTHER", "WHAT TIME IS IT", "CALL MY FRIEND NOW",
             "ORDER A PIZZA TONIGHT"]


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    """A 40-unit BPE SentencePiece tokenizer trained on BPE_TEXTS (the ``wrd`` column of a manifest)."""
    folder = tmp_path_factory.mktemp("bpe")
    lines = ["ID,duration,wav,wrd"] + [f"u{i},1.0,x.wav,{t}" for i, t in enumerate(BPE_TEXTS)]
    (folder / "train.csv").write_text("\n".join(lines) + "\n")
    return SentencePieceTokenizer.train(folder / "train.csv", folder / "tokenizer", vocab_size=40)


def test_sentencepiece_tokenizer_layout_round_trip_and_io(bpe, tmp_path):
    """MP3S's Common Voice vocabulary: id 0 is <unk> and the CTC blank; BPE pieces mark words with ▁."""
    assert bpe.vocab_size == 40 == len(bpe.labels) and bpe.model_path.name == "40_bpe.model"
    assert bpe.blank_index == 0 and bpe.labels[0] == "<unk>"
    assert any(label.startswith("▁") for label in bpe.labels)
    for text in ("TURN ON THE MUSIC", "WHAT IS THE TIME"):
        ids = bpe.encode(text)
        assert ids.dtype == torch.long and (ids != 0).all() and bpe.decode(ids) == text
        # CTC best path: repeats merged, blanks dropped
        path = [0] + [j for i in ids.tolist() for j in (i, i, 0)]
        assert bpe.ctc_collapse(path) == text
    assert bpe.normalize("  TURN   ON ") == "TURN ON"
    # a character the model never saw is <unk> = the blank: left out of the targets
    assert bpe.decode(bpe.encode("TURN ÑON")) == "TURN ON"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        bpe.decode([40])
    saved = bpe.save(tmp_path / "save" / "tokenizer.json")
    assert not Path(json.loads(saved.read_text())["model"]).is_absolute()
    again = load_tokenizer(saved)
    assert isinstance(again, SentencePieceTokenizer) and again.labels == bpe.labels
    assert isinstance(load_tokenizer(CharTokenizer().save(tmp_path / "char.json")), CharTokenizer)
    with pytest.raises(ValueError, match="not a CharTokenizer"):
        CharTokenizer.load(saved)
    # a model already trained with these settings is reused, not retrained
    model = bpe.model_path
    before = model.stat().st_mtime_ns
    assert SentencePieceTokenizer.train(model.parent.parent / "train.csv", model.parent, vocab_size=40).labels == bpe.labels
    assert model.stat().st_mtime_ns == before


def test_beam_search_without_lm_decodes_sentencepiece_units(bpe):
    """MP3S's Common Voice test decoding: CTC beam search, no LM, on BPE units (words at ▁)."""
    ids = bpe.encode("CALL MY MOTHER").tolist()
    frames = [0] + [j for i in ids for j in (i, i, 0)] + [0]  # a blank after each unit: "LL" survives
    logp = _frames_to_logp(frames, vocab=bpe.vocab_size).unsqueeze(0)
    assert greedy_decode(logp, tokenizer=bpe) == ["CALL MY MOTHER"]
    decoder = BeamSearchDecoder(bpe, lm_path=None, beam_size=8, beam_prune_logp=-12.0, token_prune_min_logp=-1.2,
                                prune_history=True)
    assert decoder(logp) == ["CALL MY MOTHER"]


# --------------------------------------------------------------------- greedy
def _frames_to_logp(frames, vocab=29, peak=0.9):
    """One row per frame: the given id gets ``peak`` probability, the rest share the remainder."""
    probs = torch.full((len(frames), vocab), (1 - peak) / (vocab - 1))
    for t, i in enumerate(frames):
        probs[t, i] = peak
    return probs.log()


def test_greedy_decode_hand_made():
    tok = CharTokenizer()
    ix = {c: tok.labels.index(c) for c in tok.labels[1:]}
    # "HELLO WORLD": repeats merged, a blank between the two Ls keeps both
    frames = [0, ix["H"], ix["H"], ix["E"], 0, ix["L"], ix["L"], 0, ix["L"], ix["O"], ix[" "], ix[" "],
              ix["W"], ix["O"], 0, ix["R"], ix["L"], ix["L"], ix["D"], 0]
    a = _frames_to_logp(frames)
    b = _frames_to_logp([ix["O"], ix["K"], 0] + [ix["Z"]] * (len(frames) - 3))  # tail is padding
    logp = torch.stack([a, b])
    assert greedy_decode(logp, torch.tensor([len(frames), 3])) == ["HELLO WORLD", "OK"]
    # relative (SpeechBrain) lengths give the same
    assert greedy_decode(logp, torch.tensor([1.0, 3 / len(frames)])) == ["HELLO WORLD", "OK"]
    # without lengths the padding is decoded too
    assert greedy_decode(logp)[1] == "OKZ"


# ----------------------------------------------------------------------- ARPA
@pytest.fixture(scope="module")
def kenlm():
    return pytest.importorskip("kenlm")


@pytest.mark.parametrize("order", [2, 3, 4])
def test_arpa_loads_and_is_normalised(tmp_path, kenlm, order):
    path = build_arpa(TOY_TEXTS, tmp_path / "toy.arpa", order=order)
    text = path.read_text()
    assert text.startswith("\\data\\") and text.rstrip().endswith("\\end\\")
    for tag in ("<s>", "</s>", "<unk>"):
        assert f"\t{tag}" in text
    model = kenlm.Model(str(path))
    assert model.order == order
    vocab = sorted({w for t in TOY_TEXTS for w in t.upper().split()}) + ["</s>", "<unk>"]
    for history in ([], ["THE"], ["THE", "CAT"], ["A", "DOG", "SAT"], ["MAT"], ["NEVERSEEN"], ["ON", "THE"]):
        state = kenlm.State()
        model.BeginSentenceWrite(state)
        for w in history:
            out = kenlm.State()
            model.BaseScore(state, w, out)
            state = out
        total = 0.0
        for w in vocab:
            total += 10 ** model.BaseScore(state, w, kenlm.State())
        assert total == pytest.approx(1.0, abs=1e-4), (order, history)
    # seen word sequences are more likely than a scrambled one
    assert model.score("THE CAT SAT") > model.score("SAT THE CAT") + 0.5


def test_kneser_ney_discounting_by_hand():
    # "<s> A B </s>" and "<s> A C </s>", bigram model.
    # unigram continuation counts: A 1 (after <s>), B 1, C 1, </s> 2 -> total 5, 4 types;
    # counts of counts n1 = 3, n2 = 1 -> D1 = 3 / (3 + 2) = 0.6; vocab A B C </s> <unk> (5):
    # p(B) = (1 - .6) / 5 + .6 * 4 / 5 / 5 = 0.176
    model = kneser_ney([["A", "B"], ["A", "C"]], order=2)
    assert 10 ** model[1][("B",)][0] == pytest.approx(0.176, abs=1e-5)
    assert 10 ** model[1][("<unk>",)][0] == pytest.approx(0.096, abs=1e-5)
    # bigram raw counts <s>A 2, AB 1, AC 1, B</s> 1, C</s> 1 -> D2 = 4 / (4 + 2) = 2/3
    # p(B | A) = (1 - 2/3) / 2 + gamma(A) p(B), gamma(A) = 2/3 * 2 / 2
    assert 10 ** model[2][("A", "B")][0] == pytest.approx(1 / 6 + 2 / 3 * 0.176, abs=1e-5)
    assert 10 ** model[1][("A",)][1] == pytest.approx(2 / 3, abs=1e-5)  # back-off weight = gamma(A)
    with pytest.raises(ValueError):
        kneser_ney([["A"]], order=1)


def test_ngram_cli_from_csv(tmp_path, kenlm):
    csv = tmp_path / "train.csv"
    csv.write_text("ID,duration,wav,spk_id,wrd\n" + "".join(f"u{i},1.0,x.flac,1,{t.upper()}\n"
                                                           for i, t in enumerate(TOY_TEXTS)))
    out = tmp_path / "lm" / "lm.arpa"
    ngram_main(["--text", str(csv), "--order", "3", "--out", str(out)])
    assert kenlm.Model(str(out)).order == 3
    assert "ngram 1=11" in out.read_text()  # 8 words + <s> </s> <unk>


# ---------------------------------------------------------------- beam search
def _tied_cat_logp(tok):
    """Frames for "THE ?AT SAT" where the first letter of the middle word is K (0.5) or C (0.4)."""
    ix = {c: tok.labels.index(c) for c in tok.labels[1:]}
    rows = []

    def frame(dist):
        p = torch.full((tok.vocab_size,), 1e-4)
        for c, v in dist.items():
            p[0 if c == "_" else ix[c]] = v
        rows.append((p / p.sum()).log())

    for c in "THE":
        frame({c: 0.95})
        frame({"_": 0.95})
    frame({" ": 0.95})
    frame({"K": 0.5, "C": 0.4, "_": 0.1})
    for c in "AT":
        frame({c: 0.95})
        frame({"_": 0.95})
    frame({" ": 0.95})
    for c in "SAT":
        frame({c: 0.95})
        frame({"_": 0.95})
    return torch.stack(rows).unsqueeze(0)


def test_beam_search_without_lm_follows_the_acoustics():
    tok = CharTokenizer()
    logp = _tied_cat_logp(tok)
    assert greedy_decode(logp, tokenizer=tok) == ["THE KAT SAT"]
    no_lm = BeamSearchDecoder(tok, lm_path=None, beam_size=16)
    assert no_lm(logp) == ["THE KAT SAT"]
    assert no_lm(torch.cat([logp, logp]), torch.tensor([logp.shape[1], 7])) == ["THE KAT SAT", "THE"]


def test_beam_search_lm_prefers_in_vocabulary_words(tmp_path, kenlm):
    pytest.importorskip("pygtrie", reason="SpeechBrain's kenlm scorer needs pygtrie (pip install brq_att_alt[lm])")
    tok = CharTokenizer()
    logp = _tied_cat_logp(tok)
    lm = build_arpa(TOY_TEXTS, tmp_path / "toy.arpa", order=3)
    with_lm = BeamSearchDecoder(tok, lm_path=lm, alpha=0.5, beta=1.0, beam_size=16)
    assert with_lm(logp) == ["THE CAT SAT"]
    # relative lengths and a batch: the second item only keeps its first word
    batch = torch.cat([logp, logp])
    out = with_lm(batch, torch.tensor([1.0, 7 / logp.shape[1]]))
    assert out[0] == "THE CAT SAT" and out[1] == "THE"


def test_beam_search_missing_lm_and_missing_kenlm(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="not found"):
        BeamSearchDecoder(CharTokenizer(), lm_path=tmp_path / "nope.arpa")
    lm = build_arpa(TOY_TEXTS, tmp_path / "toy.arpa", order=2)
    monkeypatch.setitem(sys.modules, "kenlm", None)  # import kenlm -> ImportError
    with pytest.raises(ImportError, match=r'kenlm: pip install -e "\.\[lm\]"'):
        BeamSearchDecoder(CharTokenizer(), lm_path=lm)


@pytest.fixture
def decoding_log():
    """Messages logged by brq_att_alt.ctc_decoding (SpeechBrain's logging set-up can displace caplog)."""
    ctc_decoding._warn_lm_skipped.cache_clear()
    with logged_messages(ctc_decoding.logger) as messages:
        yield messages
    ctc_decoding._warn_lm_skipped.cache_clear()


@pytest.mark.parametrize("module", ["kenlm", "pygtrie"])
def test_lm_decoder_or_none_skips_lm_with_one_line(module, tmp_path, monkeypatch, decoding_log):
    lm = build_arpa(TOY_TEXTS, tmp_path / "toy.arpa", order=2)
    monkeypatch.setitem(sys.modules, module, None)  # simulate a missing package: import -> ImportError
    assert missing_lm_modules() == (module,)
    tok = CharTokenizer()
    for _ in range(3):  # e.g. one decoder per test set: still one line
        assert lm_decoder_or_none(tok, lm, alpha=0.5, beta=1.0, beam_size=4) is None
    assert len(decoding_log) == 1
    assert module in decoding_log[0] and 'pip install -e ".[lm]"' in decoding_log[0]
    assert "greedy" in decoding_log[0]
    # no LM asked for: None, silently; a missing LM file is still an error
    assert lm_decoder_or_none(tok, None) is None and lm_decoder_or_none(tok, "") is None
    assert len(decoding_log) == 1


def test_lm_decoder_or_none_builds_the_decoder(tmp_path, kenlm, decoding_log):
    pytest.importorskip("pygtrie", reason="SpeechBrain's kenlm scorer needs pygtrie")
    lm = build_arpa(TOY_TEXTS, tmp_path / "toy.arpa", order=3)
    decoder = lm_decoder_or_none(CharTokenizer(), lm, alpha=0.5, beta=1.0, beam_size=16)
    assert isinstance(decoder, BeamSearchDecoder) and decoder.lm_path == str(lm)
    assert decoder(_tied_cat_logp(CharTokenizer())) == ["THE CAT SAT"]
    assert decoding_log == []
    with pytest.raises(FileNotFoundError, match="nope.arpa"):
        lm_decoder_or_none(CharTokenizer(), tmp_path / "nope.arpa")


def test_ctc_brain_writes_greedy_results_without_kenlm(tmp_path, monkeypatch, decoding_log):
    """The test stage of fine-tuning and the ASR probes (asr.CTCBrain): LM asked for, kenlm
    missing -> greedy results, no crash."""
    from types import SimpleNamespace

    import speechbrain as sb

    from brq_att_alt.asr import CTCBrain

    monkeypatch.setitem(sys.modules, "kenlm", None)
    logged = []
    hparams = SimpleNamespace(
        tokenizer=CharTokenizer(), lm_path=str(build_arpa(TOY_TEXTS, tmp_path / "toy.arpa", order=2)),
        lm_alpha=0.5, lm_beta=1.0, beam_size=4, output_folder=str(tmp_path), confidence=0.95,
        bootstrap_samples=50, seed=0, epoch_counter=SimpleNamespace(current=1),
        train_logger=SimpleNamespace(log_stats=lambda **kw: logged.append(kw)),
    )
    brain = SimpleNamespace(hparams=hparams)
    for name in ("on_stage_start", "write_test_report"):
        setattr(brain, name, getattr(CTCBrain, name).__get__(brain))
    brain.on_stage_start(sb.Stage.TEST)
    assert brain.lm_decoder is None and len(decoding_log) == 1 and "kenlm" in decoding_log[0]
    brain.ids, brain.refs = ["u1", "u2"], ["THE CAT SAT", "A DOG"]
    brain.hyps["greedy"] += ["THE CAT SAT", "A DOG RAN"]
    brain.write_test_report("test-clean", 1.0)
    results = json.loads((tmp_path / "wer_test-clean.json").read_text())
    assert set(results) == {"split", "checkpoint_epoch", "greedy"} and results["greedy"]["wer"] == pytest.approx(20.0)
    assert (tmp_path / "hyp_test-clean_greedy.txt").is_file() and not (tmp_path / "hyp_test-clean_lm.txt").exists()
    assert logged and "WER_greedy" in logged[0]["test_stats"] and "WER_lm" not in logged[0]["test_stats"]


# ------------------------------------------------------------------------ WER
@pytest.mark.parametrize(
    "ref, hyp, sub, dele, ins",
    [
        ("A B C D", "A B C D", 0, 0, 0),
        ("A B C D", "A X C", 1, 1, 0),  # B->X, D deleted
        ("A B", "A B C", 0, 0, 1),
        ("A B C", "", 0, 3, 0),
        ("", "A", 0, 0, 1),
        ("THE CAT SAT ON THE MAT", "CAT SAT ON THE THE MAT", 0, 1, 1),
        ("A B C D E", "B C D E F", 0, 1, 1),
        ("A B", "C D", 2, 0, 0),
    ],
)
def test_edit_ops_hand_worked(ref, hyp, sub, dele, ins):
    ops = edit_ops(ref, hyp)
    assert (ops.substitutions, ops.deletions, ops.insertions) == (sub, dele, ins)
    assert ops.ref_words == len(ref.split())
    assert ops.errors == sub + dele + ins


# Cases where the previous hand-written DP (substitutions preferred) split the errors
# otherwise than SpeechBrain / Kaldi (the totals were the same): (ref, hyp, SpeechBrain's split)
SPLIT_DISAGREEMENTS = [
    ("A ON", "ON DOG", (0, 1, 1)),  # old: 2 substitutions
    ("A THE ON", "ON DOG", (0, 2, 1)),  # old: (2, 1, 0)
    ("A ON", "ON RAN SAT", (0, 1, 2)),  # old: (2, 0, 1)
    ("A A ON A", "SAT ON THE A", (1, 1, 1)),  # old: 3 substitutions
    ("CAT DOG CAT", "A MAT CAT DOG", (2, 0, 1)),  # old: (0, 1, 2)
]


@pytest.mark.parametrize("ref, hyp, split", SPLIT_DISAGREEMENTS)
def test_edit_ops_split_is_speechbrains(ref, hyp, split):
    from speechbrain.utils.edit_distance import count_ops, op_table, wer_details_for_batch

    ops = edit_ops(ref, hyp)
    assert (ops.substitutions, ops.deletions, ops.insertions) == split
    theirs = count_ops(op_table(ref.split(), hyp.split()))
    assert split == (theirs["substitutions"], theirs["deletions"], theirs["insertions"])
    details = wer_details_for_batch(["u"], [ref.split()], [hyp.split()])[0]
    assert ops.errors == details["num_edits"] and 100 * ops.wer == pytest.approx(details["WER"])


def test_edit_ops_agree_with_speechbrain_on_random_sentences():
    from speechbrain.utils.edit_distance import count_ops, op_table

    rng = np.random.default_rng(0)
    words = "THE CAT SAT ON A MAT".split()
    for _ in range(300):
        ref = list(rng.choice(words, size=rng.integers(0, 8)))
        hyp = list(rng.choice(words, size=rng.integers(0, 8)))
        ops, theirs = edit_ops(ref, hyp), count_ops(op_table(ref, hyp))
        assert (ops.substitutions, ops.deletions, ops.insertions) == (
            theirs["substitutions"], theirs["deletions"], theirs["insertions"])


def test_wer_report_is_speechbrains_wer_txt_with_the_ci():
    """The text is ErrorRateStats.write_stats' (SpeechBrain's wer.txt), plus the CI line."""
    import io

    from speechbrain.utils.metric_stats import ErrorRateStats

    ids = [f"u{i}" for i in range(len(SPLIT_DISAGREEMENTS))]
    refs = [r for r, _, _ in SPLIT_DISAGREEMENTS]
    hyps = [h for _, h, _ in SPLIT_DISAGREEMENTS]
    summary, text = wer_report(ids, refs, hyps, n_boot=200, seed=1)
    stats = ErrorRateStats()
    stats.append(ids, [h.split() for h in hyps], [r.split() for r in refs])
    reference = io.StringIO()
    stats.write_stats(reference)
    lines = text.splitlines()
    ci_line = lines.pop(3)
    assert lines == reference.getvalue().splitlines()
    assert ci_line == (f"95% CI of %WER [ {summary['ci_low']:.2f}, {summary['ci_high']:.2f} ] "
                       "(percentile bootstrap, 200 resamplings of the 5 utterances)")
    sub, dele, ins = (sum(split[k] for _, _, split in SPLIT_DISAGREEMENTS) for k in range(3))
    assert (summary["substitutions"], summary["deletions"], summary["insertions"]) == (sub, dele, ins)
    assert lines[0] == f"%WER {summary['wer']:.2f} [ {sub + dele + ins} / 14, {ins} ins, {dele} del, {sub} sub ]"
    # a repeated utterance id keeps both utterances
    summary, text = wer_report(["a", "a"], ["X Y", "Z"], ["X Y", "W"], n_boot=50)
    assert summary["utterances"] == 2 and summary["errors"] == 1 and "a (2), %WER 100.00" in text


def test_corpus_wer_is_a_ratio_of_sums():
    wer, ops = corpus_wer(["A B C D", "E"], ["A B C D", ""])
    assert wer == pytest.approx(1 / 5)  # the mean of utterance WERs would be 0.5
    assert [o.wer for o in ops] == [0.0, 1.0]
    summary, text = wer_report(["u1", "u2"], ["A B C D", "E"], ["A B C D", ""], n_boot=200)
    assert summary["wer"] == pytest.approx(20.0) and summary["deletions"] == 1
    assert "%WER 20.00" in text and "u2, %WER 100.00" in text
    with pytest.raises(ValueError):
        corpus_wer(["A"], [])


def test_bootstrap_ci_known_data():
    # half the utterances all wrong, half right, 10 words each: WER 0.5, the mean of
    # 100 Bernoulli(0.5) draws -> sd 0.05, 95% interval about [0.40, 0.60]
    errors, words = [10] * 50 + [0] * 50, [10] * 100
    wer, low, high = wer_bootstrap_ci(errors, words, n_boot=4000, seed=1)
    assert wer == pytest.approx(0.5)
    assert 0.38 < low < 0.43 and 0.57 < high < 0.62
    assert wer_bootstrap_ci(errors, words, n_boot=500, seed=3) == wer_bootstrap_ci(errors, words, n_boot=500, seed=3)
    # a wider confidence gives a wider interval
    _, low99, high99 = wer_bootstrap_ci(errors, words, confidence=0.99, n_boot=4000, seed=1)
    assert low99 < low and high99 > high
    # identical utterances: no spread
    assert wer_bootstrap_ci([2] * 20, [8] * 20, n_boot=300) == pytest.approx((0.25, 0.25, 0.25))
    # the statistic is the ratio of sums: one long perfect utterance dominates
    wer, low, high = wer_bootstrap_ci([1, 0], [1, 100], n_boot=2000, seed=0)
    assert wer == pytest.approx(1 / 101)
    # replicates: {long, long} 0 (p 1/4), {short, long} 1/101 (1/2), {short, short} 1 (1/4)
    assert low == 0.0 and high == 1.0
    _, mid_low, mid_high = wer_bootstrap_ci([1, 0], [1, 100], confidence=0.4, n_boot=2000, seed=0)
    assert mid_low == mid_high == pytest.approx(1 / 101)  # not 0.5, the mean of utterance rates
    assert not math.isnan(low)
    with pytest.raises(ValueError):
        wer_bootstrap_ci([], [])
    with pytest.raises(ValueError):
        wer_bootstrap_ci([1], [0])


def test_bootstrap_ci_coverage_simulation():
    """The 95% interval covers the true WER in roughly 95% of simulated test sets."""
    rng = np.random.default_rng(0)
    true_p, hits, trials = 0.2, 0, 60
    for k in range(trials):
        words = rng.integers(3, 25, size=80)
        errors = rng.binomial(words, true_p)
        _, low, high = wer_bootstrap_ci(errors, words, n_boot=400, seed=k)
        hits += low <= true_p <= high
    assert hits >= 0.85 * trials
