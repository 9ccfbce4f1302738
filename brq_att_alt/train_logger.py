"""The recipes' training logger: SpeechBrain's text train log, and TensorBoard on request.

Every recipe YAML (pre-training, fine-tuning, MP3S) has::

    log_interval_steps: 100   # loss, learning rate (pre-training: masked accuracy) every N optimizer steps; 0 = off
    use_tensorboard: False    # True: also TensorBoard event files in <output_folder>/tensorboard
    train_logger: !new:brq_att_alt.train_logger.RecipeTrainLogger
        save_file: !ref <train_log>
        tensorboard_dir: !ref <output_folder>/tensorboard
        use_tensorboard: !ref <use_tensorboard>

``RecipeTrainLogger`` is SpeechBrain's ``FileTrainLogger`` (``train_log.txt``; each line
also goes to the console at INFO level) that, with ``use_tensorboard``, also hands every
numeric figure to SpeechBrain's ``TensorboardLogger``: per-epoch figures as SpeechBrain
logs them (``loss/train``, ``loss/valid``, ... one point per epoch), step-level figures
(``log_stats`` with a ``step`` in ``stats_meta``, written by
``training.FaultTolerantBrain``) as ``<name>/train_step`` at that optimizer step. The
``tensorboard`` package is an optional extra (``pip install -e ".[tensorboard]"``):
switched on without it, the logger refuses to be built, so the run stops at start with
one message saying what to install.
"""

import logging
import math
from numbers import Number
from typing import Dict, Optional

from speechbrain.utils.distributed import main_process_only
from speechbrain.utils.train_logger import FileTrainLogger

logger = logging.getLogger(__name__)

TENSORBOARD_HINT = 'pip install -e ".[tensorboard]" (or pip install tensorboard)'


def _numeric(stats: Optional[dict]) -> Dict[str, float]:
    """The finite numbers of ``stats`` (strings, lists and NaN are left out); lists of numbers as ``name/i``."""
    out: Dict[str, float] = {}
    for key, value in (stats or {}).items():
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, Number) for v in value):
            out.update({f"{key}/{i}": float(v) for i, v in enumerate(value)})
        elif isinstance(value, Number) and not isinstance(value, bool):
            out[key] = float(value)
        elif hasattr(value, "item") and getattr(value, "numel", lambda: 0)() == 1:  # a 1-element tensor
            out[key] = float(value.item())
    return {k: v for k, v in out.items() if math.isfinite(v)}


class RecipeTrainLogger(FileTrainLogger):
    """``FileTrainLogger`` (``save_file``) + SpeechBrain's ``TensorboardLogger`` in ``tensorboard_dir``
    when ``use_tensorboard`` (see the module doc). ImportError at construction if tensorboard
    is switched on but not installed."""

    def __init__(self, save_file, tensorboard_dir: Optional[str] = None, use_tensorboard: bool = False,
                 precision: int = 2):
        super().__init__(save_file, precision=precision)
        self.tensorboard = None
        if use_tensorboard:
            if not tensorboard_dir:
                raise ValueError("use_tensorboard: True needs a tensorboard_dir")
            try:
                from speechbrain.utils.train_logger import TensorboardLogger

                self.tensorboard = TensorboardLogger(str(tensorboard_dir))
            except ImportError as err:
                raise ImportError(f"use_tensorboard: True needs the tensorboard package, which is not installed "
                                  f"({err}). Install it: {TENSORBOARD_HINT}; or set use_tensorboard: False.") from err

    @main_process_only
    def log_stats(self, stats_meta, train_stats=None, valid_stats=None, test_stats=None, verbose=True):
        super().log_stats(stats_meta, train_stats, valid_stats, test_stats, verbose)
        if self.tensorboard is None:
            return
        if "step" in stats_meta and valid_stats is None and test_stats is None:
            step = int(stats_meta["step"])
            meta = {k: v for k, v in stats_meta.items() if k not in ("step", "epoch")}
            for name, value in {**_numeric(meta), **_numeric(train_stats)}.items():
                self.tensorboard.writer.add_scalar(f"{name}/train_step", value, step)
        else:
            self.tensorboard.log_stats(_numeric(stats_meta), *(_numeric(s) if s is not None else None
                                                               for s in (train_stats, valid_stats, test_stats)))
        self.tensorboard.writer.flush()


__all__ = ["RecipeTrainLogger", "TENSORBOARD_HINT"]
