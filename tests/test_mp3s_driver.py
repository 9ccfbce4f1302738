"""MP3S driver: the results table layout (no recipe run)."""

import csv
import subprocess
import sys

from helpers import MP3S, load_script

run_all = load_script(MP3S / "run_all.py")


def _result(task, probe, label, metrics, language=None):
    return {"task": task, "probe": probe, "language": language, "label": label,
            "metrics": None if metrics is None else {"metrics": metrics}}


def test_table_layout_rows_tasks_probes_columns_mixers(tmp_path):
    wer = lambda v: {"value": v, "direction": "lower", "unit": "%"}  # noqa: E731
    results = [
        _result("LibriSpeech_ASR", "BiLSTM", "mhsa", {"WER test-clean": wer(10.0), "WER test-clean +LM": wer(7.5)}),
        _result("LibriSpeech_ASR", "BiLSTM", "pom", {"WER test-clean": wer(11.25), "WER test-clean +LM": wer(8.0)}),
        _result("CommonVoice_ASR", "linear", "mhsa", {"WER test": wer(50.0)}, language="cy"),
        _result("CommonVoice_ASR", "linear", "pom", None, language="cy"),
        _result("SLURP_IC", "linear", "mhsa", {"accuracy": {"value": 80.0, "direction": "higher", "unit": "%"}}),
    ]
    md, csv_path = run_all.write_tables(results, ["mhsa", "pom"], tmp_path)
    lines = md.read_text().splitlines()
    assert lines[0] == "| Task | Probe | Metric | mhsa | pom |"
    assert lines[2] == "| ASR LibriSpeech | BiLSTM | WER test-clean (%) ↓ | 10.00 | 11.25 |"
    assert lines[3] == "|  | BiLSTM | WER test-clean +LM (%) ↓ | 7.50 | 8.00 |"
    assert lines[4] == "| ASR CommonVoice (cy) | linear | WER test (%) ↓ | 50.00 | failed |"
    assert lines[5] == "| Intent classification SLURP | linear | accuracy (%) ↑ | 80.00 | failed |"
    with open(csv_path) as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0] == {"task": "ASR LibriSpeech", "probe": "BiLSTM", "metric": "WER test-clean",
                       "direction": "lower", "unit": "%", "mhsa": "10.00", "pom": "11.25"}
    assert rows[2]["pom"] == ""


def test_tiny_overrides_cover_every_recipe_and_its_yaml_keys():
    recipes = run_all.find_recipes()
    assert [r.task for r in recipes][::2] == list(run_all.TASK_NAMES)  # two probes a task, in table order
    assert {(r.task, r.probe) for r in recipes} == set(run_all.TINY)
    for recipe in recipes:
        assert recipe.yaml.parents[1].name == recipe.probe  # <Task>/<probe_name>/hparams/*.yaml
        assert recipe.script.is_symlink() and recipe.script.resolve() == MP3S / recipe.task / "train.py"
        keys = {line.split(":")[0] for line in recipe.yaml.read_text().splitlines() if line and not line[0].isspace()}
        for key in list(run_all.TINY_COMMON) + list(run_all.TINY[(recipe.task, recipe.probe)]):
            assert key in keys, f"--tiny overrides {key}, absent from {recipe.task}/{recipe.probe}"
        assert {"pretrained_path", "data_folder", "dataset", "output_folder", "probe_name"} <= keys


def test_a_probe_entry_point_runs_from_any_folder(tmp_path):
    """``python recipes/MP3S/<Task>/<probe>/train.py`` (a link to ``<Task>/train.py``) imports only
    the installed package: started from another folder it gets as far as loading the encoder."""
    script = MP3S / "SLURP_IC" / "linear" / "train.py"
    yaml = MP3S / "SLURP_IC" / "linear" / "hparams" / "linear.yaml"
    proc = subprocess.run([sys.executable, str(script), str(yaml), f"--pretrained_path={tmp_path / 'no_run'}",
                           f"--output_folder={tmp_path / 'out'}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0 and "ImportError" not in proc.stderr and "ModuleNotFoundError" not in proc.stderr
    assert f"{tmp_path / 'no_run'} does not exist" in proc.stderr
