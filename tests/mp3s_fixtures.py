"""Fixtures of the MP3S tests (imported by tests/test_mp3s_*.py; not a test module).

* ``tiny_pretrained``: a pre-training output folder (``brq_model.json`` +
  ``CKPT+exported/model.ckpt``) of a small random BestRQModel (d_model 32, 2 layers).
* ``mp3s_recipes``: the recipes folder on ``sys.path`` (``common``, ``asr``) and a
  ``run_recipe(task, probe, output, *overrides)`` helper that runs a recipe's
  ``main`` in this process.
"""

import importlib
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
MP3S = REPO_ROOT / "recipes" / "MP3S"
TASK_MODULES = {
    "LibriSpeech_ASR": "librispeech_asr", "CommonVoice_ASR": "commonvoice_asr",
    "VoxCeleb1_SV": "voxceleb1_sv", "SLURP_IC": "slurp_ic", "IEMOCAP_ER": "iemocap_er",
}
TINY_MODEL = dict(d_model=32, num_layers=2, nhead=4, d_ffn=64, kernel_size=7, codebook_size=64)


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory) -> Path:
    from brq_att_alt.model import BestRQModel
    from brq_att_alt.pretrained import save_pretrained

    torch.manual_seed(0)
    model = BestRQModel("mhsa", **TINY_MODEL)
    return save_pretrained(model, tmp_path_factory.mktemp("tiny_pretrained") / "save")


def task_module(task: str):
    for folder in (MP3S, MP3S / task):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    return importlib.import_module(TASK_MODULES[task])


@pytest.fixture(scope="session")
def mp3s_recipes():
    if str(MP3S) not in sys.path:
        sys.path.insert(0, str(MP3S))

    def run_recipe(task, probe, output, pretrained, data_folder, *overrides):
        module = task_module(task)
        yaml = MP3S / task / probe / "hparams" / f"{probe}.yaml"
        given = {o.split("=", 1)[0] for o in overrides}
        defaults = [d for d in ("--number_of_epochs=1", "--batch_size=4") if d.split("=", 1)[0] not in given]
        argv = [str(yaml), f"--pretrained_path={pretrained}", f"--output_folder={output}",
                f"--data_folder={data_folder}", *defaults, *overrides]
        return module.main(argv, probe=probe)

    return run_recipe
