"""Confidence intervals over test items and the pre-trained vs random comparison table
(``brq_att_alt.probes.compare``), on hand-made data."""

import csv

import numpy as np
import pytest

from brq_att_alt.probes.compare import (
    COLUMNS, accuracy_ci, bootstrap_ci, comparison_markdown, comparison_rows, eer_ci, headline_metric, task_wins,
    write_comparison,
)
from brq_att_alt.probes.training import accuracy_metric
from brq_att_alt.probes.verification import compute_eer


def test_accuracy_interval_brackets_the_accuracy_and_shrinks_with_more_items():
    small = [1] * 15 + [0] * 5
    acc, low, high = accuracy_ci(small, n_boot=2000)
    assert acc == 0.75 and low < 0.75 < high
    # normal approximation: 1.96 * sqrt(p (1 - p) / n) = 0.19 for 20 items
    assert high - low == pytest.approx(2 * 1.96 * np.sqrt(0.75 * 0.25 / 20), abs=0.05)
    acc_big, low_big, high_big = accuracy_ci(small * 25, n_boot=2000)
    assert acc_big == 0.75 and high_big - low_big < (high - low) / 3
    # every item right (or wrong): nothing to resample into another value
    assert accuracy_ci([True] * 7) == (1.0, 1.0, 1.0)
    assert accuracy_ci([0] * 7) == (0.0, 0.0, 0.0)


def test_intervals_are_seeded_and_agree_with_the_generic_bootstrap():
    items = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1]
    assert accuracy_ci(items, seed=4) == accuracy_ci(items, seed=4)
    values = np.linspace(0.0, 1.0, 23) ** 2
    assert bootstrap_ci(values, np.mean, seed=4) == bootstrap_ci(values, np.mean, seed=4)
    assert bootstrap_ci(values, np.mean, seed=4) != bootstrap_ci(values, np.mean, seed=5)
    acc, low, high = bootstrap_ci(items, np.mean, n_boot=4000, seed=1)
    _, low2, high2 = accuracy_ci(items, n_boot=4000, seed=1)
    assert acc == 0.7 and abs(low - low2) <= 0.1 and abs(high - high2) <= 0.1


def test_interval_errors():
    with pytest.raises(ValueError):
        accuracy_ci([])
    with pytest.raises(ValueError):
        accuracy_ci([1, 0], confidence=95)
    with pytest.raises(ValueError):
        bootstrap_ci([], np.mean)
    with pytest.raises(ValueError):
        eer_ci([0.5], [])
    with pytest.raises(ValueError):
        eer_ci([0.5], [0.1], n_boot=0)


def test_eer_interval_over_trials():
    rng = np.random.default_rng(0)
    # separated scores: EER 0 in every resampling
    assert eer_ci([0.9, 0.8, 0.95], [0.1, 0.2, 0.3, 0.0]) == (0.0, 0.0, 0.0)
    pos, neg = rng.normal(1.0, 1.0, 300), rng.normal(-1.0, 1.0, 3000)
    eer, low, high = eer_ci(pos, neg, n_boot=300)
    assert eer == compute_eer(pos, neg)[0]
    assert low < eer < high and 0.10 < eer < 0.22  # Phi(-1) = 0.159
    assert high - low < 0.1


def test_accuracy_metric_for_the_metrics_file():
    metric = accuracy_metric([True, False, True, True], {"confidence": 0.9, "bootstrap_samples": 200})
    assert metric["value"] == 75.0 and metric["direction"] == "higher" and metric["unit"] == "%"
    assert metric["test_items"] == 4 and metric["confidence"] == 0.9
    assert 0.0 <= metric["ci95"][0] <= 75.0 <= metric["ci95"][1] <= 100.0


def _entry(task, probe, init, **metrics):
    return {"task": task, "probe": probe, "init": init, "metrics": metrics}


def _m(value, low, high, direction):
    return {"value": value, "direction": direction, "unit": "%", "ci95": [low, high]}


def test_comparison_rows_better_side_and_overlap():
    results = [
        _entry("ASR", "BiLSTM", "pretrained", **{"WER +LM": _m(30.0, 25.0, 35.0, "lower")}),
        _entry("ASR", "BiLSTM", "random", **{"WER +LM": _m(80.0, 75.0, 85.0, "lower")}),
        _entry("Intent", "BiLSTM", "random", accuracy=_m(50.0, 40.0, 60.0, "higher")),
        _entry("Intent", "BiLSTM", "pretrained", accuracy=_m(55.0, 45.0, 65.0, "higher")),
        _entry("SV", "Xvector", "pretrained", EER=_m(20.0, 15.0, 25.0, "lower"),
               minDCF={"value": 0.5, "direction": "lower", "unit": ""}),
        _entry("SV", "Xvector", "random", EER=_m(10.0, 8.0, 12.0, "lower"),
               minDCF={"value": 0.5, "direction": "lower", "unit": ""}),
        _entry("Emotion", "linear", "pretrained", accuracy=_m(60.0, 50.0, 70.0, "higher")),
        {"task": "Emotion", "probe": "linear", "init": "random", "metrics": None},  # a failed run
    ]
    rows = comparison_rows(results)
    assert [(r["task"], r["metric"]) for r in rows] == [("ASR", "WER +LM"), ("Intent", "accuracy"), ("SV", "EER"),
                                                         ("SV", "minDCF"), ("Emotion", "accuracy")]
    asr, intent, eer, dcf, emotion = rows
    assert asr["better"] == "pretrained" and asr["intervals_overlap"] is False and asr["difference"] == -50.0
    assert intent["better"] == "pretrained" and intent["intervals_overlap"] is True
    assert eer["better"] == "random" and eer["intervals_overlap"] is False
    assert dcf["better"] == "tie" and dcf["intervals_overlap"] is None and dcf["pretrained_low"] is None
    assert emotion["random"] is None and emotion["better"] == "" and emotion["intervals_overlap"] is None
    with pytest.raises(ValueError):
        comparison_rows([_entry("ASR", "BiLSTM", "finetuned", accuracy=_m(1, 0, 2, "higher"))])


def test_task_wins_judge_each_task_by_its_headline_metric():
    assert headline_metric(["WER test-clean", "WER test-clean +LM", "WER test-other +LM"]) == "WER test-clean +LM"
    assert headline_metric(["minDCF", "EER"]) == "EER"
    rows = comparison_rows([
        _entry("ASR", "BiLSTM", "pretrained", **{"WER": _m(90.0, 85.0, 95.0, "lower"),
                                                 "WER +LM": _m(30.0, 25.0, 35.0, "lower")}),
        _entry("ASR", "BiLSTM", "random", **{"WER": _m(80.0, 75.0, 85.0, "lower"),
                                             "WER +LM": _m(80.0, 75.0, 85.0, "lower")}),
        _entry("SV", "Xvector", "pretrained", minDCF={"value": 0.5, "direction": "lower"}, EER=_m(20.0, 18.0, 22.0, "lower")),
        _entry("SV", "Xvector", "random", minDCF={"value": 0.1, "direction": "lower"}, EER=_m(21.0, 19.0, 23.0, "lower")),
    ])
    # ASR counts by its WER with the LM (won, apart), SV by its EER (won, overlapping), not by minDCF
    assert task_wins(rows) == {"tasks": 2, "pretrained": 2, "apart": 1, "random": 0}


def test_comparison_table_files(tmp_path):
    rows = comparison_rows([
        _entry("ASR", "BiLSTM", "pretrained", **{"WER +LM": _m(30.0, 25.0, 35.0, "lower")}),
        _entry("ASR", "BiLSTM", "random", **{"WER +LM": _m(80.0, 75.0, 85.0, "lower")}),
        _entry("Intent", "BiLSTM", "pretrained", accuracy=_m(55.0, 45.0, 65.0, "higher")),
        _entry("Intent", "BiLSTM", "random", accuracy=_m(58.0, 48.0, 68.0, "higher")),
    ])
    md, csv_path = write_comparison(rows, tmp_path / "out")
    lines = md.read_text().splitlines()
    assert lines[0] == "| Task | Probe | Metric | pre-trained [95% CI] | random init [95% CI] | better |"
    assert lines[2] == ("| ASR | BiLSTM | WER +LM (%) ↓ | 30.00 [25.00, 35.00] | 80.00 [75.00, 85.00] | "
                        "**pre-trained**, intervals apart |")
    assert lines[3] == "| Intent | BiLSTM | accuracy (%) ↑ | 55.00 [45.00, 65.00] | 58.00 [48.00, 68.00] | random init |"
    assert lines[-2] == ("Pre-trained better on 1 of 2 rows (1 with non-overlapping 95% intervals), "
                         "random init better on 1.")
    assert lines[-1] == ("Per task (its first metric; ASR: the WER with the LM): pre-trained better on 1 of 2 "
                         "(1 with non-overlapping 95% intervals), random init better on 1.")
    with open(csv_path) as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == list(COLUMNS)
    assert table[0]["pretrained"] == "30.0000" and table[0]["better"] == "pretrained"
    assert table[0]["intervals_overlap"] == "False" and table[1]["better"] == "random"
    assert comparison_markdown([]).splitlines()[-1].startswith("Pre-trained better on 0 of 0 rows")
