"""Checkpoints that survive kills, full disks and bad data: ``SafeCheckpointer``.

``SafeCheckpointer`` is SpeechBrain's ``Checkpointer`` (every YAML's ``checkpointer:``)
with these guarantees:

* **Atomic saves.** A checkpoint is written into ``<save>/.tmp-CKPT+<time>``; every file
  is flushed to disk, ``CKPT.yaml`` is written last and records the size of every file
  (``files:``), then the folder is renamed to ``CKPT+<time>``. A kill at any moment leaves
  the complete new checkpoint or none; the leftover temporary folder is removed, with a
  warning, when the run starts again. Deleting old checkpoints renames them away first.
* **Disk full.** A save that fails for lack of space raises ``DiskFullError`` ("disk
  full", naming the folder); the partial checkpoint is removed, the older ones are intact
  and the run restarts from the newest of them once space is freed.
* **Finite weights only.** Before anything is written, every module and optimizer
  recoverable is checked: a non-finite value raises ``NonFiniteCheckpointError`` instead
  of a checkpoint that would poison every later resume. So the newest checkpoint, which
  rotation always keeps, is a finite one.
* **Fallback on load.** At start, a checkpoint whose ``CKPT.yaml`` is unreadable, whose
  files are missing or shorter than recorded, or whose files cannot be loaded, is reported
  by its folder name and the previous good one is loaded. If checkpoints exist but none
  can be read, the run stops (``CheckpointError``) instead of silently starting afresh.
  Broken folders are left in place for inspection and are never counted or deleted by
  rotation.

``RNGStates`` is a recoverable of the random generators training draws from (torch CPU,
every CUDA device, Python's ``random`` and numpy's global generator), per process, so that
a resumed run draws the same dropout masks as an uninterrupted one.
``checkpoint_problem`` is the structural check shared with ``brq_att_alt.pretrained``.
"""

import errno
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import torch
import yaml
from speechbrain.dataio.dataloader import SaveableDataLoader
from speechbrain.utils.checkpoints import (
    DEFAULT_SAVE_HOOKS,
    METAFNAME,
    PARAMFILE_EXT,
    Checkpoint,
    Checkpointer,
    ckpt_recency,
    get_default_hook,
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
    torch_save,
)
from speechbrain.utils.distributed import (
    ddp_barrier,
    ddp_broadcast,
    if_main_process,
    is_distributed_initialized,
)

logger = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"  # SpeechBrain only lists folders whose name starts with CKPT
FILES_KEY = "files"  # CKPT.yaml: {file name: size in bytes} of a complete checkpoint
LOW_SPACE_BYTES = 64 * 2**20  # a save failing with less free space than this is "disk full"
PathLike = Union[str, Path]


class CheckpointError(RuntimeError):
    """Checkpoints exist but none can be loaded (each one is named, with its problem)."""


class DiskFullError(OSError):
    """A checkpoint could not be written for lack of disk space (errno ENOSPC)."""


class NonFiniteCheckpointError(RuntimeError):
    """Refused to save a checkpoint holding NaN or Inf values."""


# ------------------------------------------------------------------ checks
def checkpoint_problem(folder: PathLike, needed: Sequence[str] = ()) -> Optional[str]:
    """Why the checkpoint folder cannot be used, or None when it looks complete.

    Cheap (no tensor is read): ``CKPT.yaml`` must parse when present, the files it
    records under ``files:`` must exist with the recorded sizes (a ``SafeCheckpointer``
    save), and every name in ``needed`` must be a non-empty file. A checkpoint written by
    plain SpeechBrain (no ``files:``) is only known to be good once it has been loaded.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return "not a folder"
    meta_path = folder / METAFNAME
    files: Dict[str, int] = {}
    if meta_path.is_file():
        try:
            meta = yaml.safe_load(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            return f"{METAFNAME} cannot be read ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
        if not isinstance(meta, dict):
            return f"{METAFNAME} holds no meta data"
        files = meta.get(FILES_KEY) or {}
        if not isinstance(files, dict):
            return f"{METAFNAME} has a malformed '{FILES_KEY}' entry"
    for name, size in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        actual = path.stat().st_size
        if actual != int(size):
            return f"{name} holds {actual} bytes but {size} were written (truncated)"
    for name in needed:
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size == 0:
            return f"{name} is empty"
    return None


def nonfinite_tensors(named: Iterable) -> List[str]:
    """Names of the floating-point tensors of ``(name, tensor)`` pairs holding NaN or Inf."""
    by_device: Dict[torch.device, list] = {}
    for n, t in named:
        if torch.is_tensor(t) and t.is_floating_point() and t.numel():
            by_device.setdefault(t.device, []).append((n, t))
    bad = []
    for pairs in by_device.values():
        flags = torch.stack([torch.isfinite(t).all() for _, t in pairs])
        if not bool(flags.all()):  # one device sync per device when all is well
            bad += [n for (n, _), ok in zip(pairs, flags.tolist()) if not ok]
    return bad


def _recoverable_tensors(name: str, obj) -> List:
    """(name, tensor) pairs of a module's state dict or an optimizer's state."""
    if isinstance(obj, torch.nn.Module):
        return [(f"{name}.{k}", v) for k, v in obj.state_dict().items()]
    if isinstance(obj, torch.optim.Optimizer):
        params = [p for group in obj.param_groups for p in group["params"]]
        pairs = []
        for idx, param in enumerate(params):
            pairs += [(f"{name}.state[{idx}].{k}", v) for k, v in obj.state.get(param, {}).items()]
        return pairs
    return []


def is_disk_full(err: BaseException, folder: Optional[PathLike] = None) -> bool:
    """True if ``err`` (or an error it was raised from) is ENOSPC / EDQUOT, or if it is any
    write error while the file system of ``folder`` has less than 64 MiB free (torch's
    writer reports a full disk as "file write failed", without errno)."""
    seen = set()
    e: Optional[BaseException] = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(e):
            return True
        e = e.__cause__ or e.__context__
    if folder is not None:
        probe = Path(folder)
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            return shutil.disk_usage(probe).free < LOW_SPACE_BYTES
        except OSError:
            return False
    return False


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync folders
        pass
    finally:
        os.close(fd)


def save_torch_file(obj, path: PathLike) -> None:
    """``torch.save`` through a Python file object, flushed to disk: a full disk then raises
    OSError(ENOSPC) instead of torch's errno-less "file write failed"."""
    with open(path, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())


# ------------------------------------------------------------------ RNG states
def capture_rng_state() -> dict:
    """The states of torch's CPU and CUDA generators, Python's ``random`` and numpy's."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "python": random.getstate(),
        "numpy": (kind, keys.tolist(), int(pos), int(has_gauss), float(cached)),
    }


def restore_rng_state(state: dict) -> None:
    """Inverse of ``capture_rng_state``; CUDA states only when the device count matches."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None:
        if torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
            torch.cuda.set_rng_state_all(cuda)
        else:
            visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
            logger.warning("The checkpoint holds %d CUDA generator states but %d CUDA devices are visible: "
                           "the CUDA generators are not restored (dropout masks will differ from an "
                           "uninterrupted run).", len(cuda), visible)
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


class RNGStates:
    """Checkpoint recoverable of the global random generators of every process.

    Saved as a list indexed by rank (one entry without DDP); loaded into each process
    from its own entry.
    """

    @mark_as_saver
    def _save(self, path):
        state = capture_rng_state()
        if is_distributed_initialized():
            states = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(states, state)
        else:
            states = [state]
        if if_main_process():
            save_torch_file(states, path)

    @mark_as_loader
    def _load(self, path, end_of_epoch=False):
        del end_of_epoch
        states = torch.load(path, map_location="cpu")
        rank = torch.distributed.get_rank() if is_distributed_initialized() else 0
        if rank >= len(states):
            logger.warning("The checkpoint holds the random states of %d processes; process %d reuses those "
                           "of process %d.", len(states), rank, rank % len(states))
        restore_rng_state(states[rank % len(states)])


# every process runs the saver (it gathers the states); only the main one writes
register_checkpoint_hooks(RNGStates, save_on_main_only=False)


# ------------------------------------------------------------------ checkpointer
class SafeCheckpointer(Checkpointer):
    """SpeechBrain's Checkpointer with atomic saves, finite-only checkpoints, "disk full"
    errors and a fallback to the previous checkpoint (see the module doc).

    Same arguments as ``speechbrain.utils.checkpoints.Checkpointer``; unlike it, the
    folder is created at the first save, not when the YAML is loaded.
    """

    def __init__(self, checkpoints_dir, recoverables=None, custom_load_hooks=None, custom_save_hooks=None,
                 allow_partial_load=False):
        # Checkpointer.__init__ without its os.makedirs: a run refused at start writes nothing
        self.checkpoints_dir = Path(checkpoints_dir)
        self.recoverables = {}
        self.optional_recoverables = {}
        if recoverables is not None:
            self.add_recoverables(recoverables)
        self.custom_load_hooks = dict(custom_load_hooks or {})
        self.custom_save_hooks = dict(custom_save_hooks or {})
        self.allow_partial_load = allow_partial_load
        self._unreadable: Dict[Path, str] = {}  # folders that failed to load in this process
        self._reported: set = set()

    def add_recoverables(self, recoverables):
        super().add_recoverables(recoverables)
        for name in recoverables:
            self.optional_recoverables.setdefault(name, False)

    # ------------------------------------------------------------ listing
    def _list_checkpoint_dirs(self):
        if not self.checkpoints_dir.is_dir():
            return []
        return super()._list_checkpoint_dirs()

    def broken_checkpoints(self) -> Dict[Path, str]:
        """{folder: problem} of the checkpoint folders that cannot be used."""
        broken = {}
        for path in self._list_checkpoint_dirs():
            problem = self._unreadable.get(path) or checkpoint_problem(path)
            if problem is not None:
                broken[path] = problem
        return broken

    def list_checkpoints(self):
        """Complete checkpoints only; a broken one is reported (once) and left out, so that it
        is neither loaded nor counted (or deleted) by rotation."""
        broken = self.broken_checkpoints()
        for path, problem in broken.items():
            if path not in self._reported:
                self._reported.add(path)
                logger.warning("Checkpoint %s is incomplete or unreadable (%s): it is ignored. Delete it "
                               "once you have looked at it.", path.name, problem)
        good = [p for p in self._list_checkpoint_dirs() if p not in broken]
        return self._construct_checkpoint_objects(good)

    def remove_leftovers(self) -> List[Path]:
        """Delete the temporary folders of interrupted saves (main process); returns them."""
        if not self.checkpoints_dir.is_dir():
            return []
        leftovers = sorted(p for p in self.checkpoints_dir.glob(f"{TMP_PREFIX}*") if p.is_dir())
        if if_main_process():
            for path in leftovers:
                logger.warning("Removing %s: an incomplete checkpoint left by an interrupted save or deletion.",
                               path.name)
                shutil.rmtree(path, ignore_errors=True)
        ddp_barrier()
        return leftovers

    # ------------------------------------------------------------ saving
    def check_finite(self) -> None:
        """NonFiniteCheckpointError if a module or optimizer recoverable holds NaN / Inf."""
        bad = []
        for name, obj in self.recoverables.items():
            bad += nonfinite_tensors(_recoverable_tensors(name, obj))
        if bad:
            newest = self.find_checkpoint()
            keep = f"the newest checkpoint, {newest.path.name}, is intact" if newest else "no checkpoint exists yet"
            raise NonFiniteCheckpointError(
                f"Refusing to save a checkpoint in {self.checkpoints_dir}: {len(bad)} tensors hold NaN or Inf "
                f"({', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}); {keep}. Look for non-finite audio "
                "or a too high learning rate, then resume from it."
            )

    def save_checkpoint(self, meta={}, end_of_epoch=True, name=None, verbosity=logging.INFO):
        """As SpeechBrain's, but atomic, finite-only and with a clear "disk full" error."""
        self.check_finite()
        final = tmp = None
        if if_main_process():
            final = self._new_checkpoint_dirpath() if name is None else self._custom_checkpoint_dirpath(name)
            tmp = final.with_name(TMP_PREFIX + final.name)
            try:
                if tmp.exists():
                    shutil.rmtree(tmp)
                tmp.mkdir(parents=True)
            except OSError as err:
                if is_disk_full(err, final.parent):
                    raise self._disk_full_error(final) from err
                raise
        final, tmp = ddp_broadcast((final, tmp), src=0)
        try:
            saved_meta = self._write(tmp, final, meta, end_of_epoch)
        except BaseException as err:
            full = isinstance(err, Exception) and if_main_process() and is_disk_full(err, tmp)
            if if_main_process():
                shutil.rmtree(tmp, ignore_errors=True)
            if full:
                raise self._disk_full_error(final) from err
            raise
        if if_main_process():
            kind = "end-of-epoch" if end_of_epoch else "intra-epoch"
            logger.log(verbosity, "Saved an %s checkpoint in %s", kind, final)
            return Checkpoint(final, saved_meta, {n: final / f"{n}{PARAMFILE_EXT}" for n in self.recoverables})
        return None

    def _write(self, tmp: Path, final: Path, meta: dict, end_of_epoch: bool) -> Optional[dict]:
        """Every recoverable into ``tmp``, then CKPT.yaml, then ``tmp`` -> ``final``."""
        for name, obj in self.recoverables.items():
            path = tmp / f"{name}{PARAMFILE_EXT}"
            hook = self.custom_save_hooks.get(name) or get_default_hook(obj, DEFAULT_SAVE_HOOKS)
            if hook is None:
                raise RuntimeError(f"Don't know how to save {type(obj)}: register a save hook for {name!r}.")
            if hook is torch_save:  # SpeechBrain's default for modules / optimizers / schedulers
                if if_main_process():
                    save_torch_file(obj.state_dict(), path)
            else:
                hook(obj, path)
        ddp_barrier()  # every process has written its part
        saved_meta = None
        if if_main_process():
            for path in tmp.iterdir():
                _fsync(path)
            files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}
            saved_meta = self._save_checkpoint_metafile(tmp / METAFNAME, {**meta, FILES_KEY: files}, end_of_epoch)
            _fsync(tmp / METAFNAME)
            old = final.with_name(f"{TMP_PREFIX}replaced-{final.name}")
            if final.exists():  # a named checkpoint saved again: replace it
                os.rename(final, old)
            os.rename(tmp, final)
            _fsync(self.checkpoints_dir)
            shutil.rmtree(old, ignore_errors=True)
        ddp_barrier()
        return saved_meta

    def _disk_full_error(self, final: Path) -> DiskFullError:
        newest = self.find_checkpoint()
        keep = (f"the newest complete checkpoint, {newest.path.name}, is intact"
                if newest else "no complete checkpoint exists yet")
        return DiskFullError(
            errno.ENOSPC,
            f"Disk full (no space left on device) while writing the checkpoint {final.name} in "
            f"{final.parent}: the partial checkpoint was removed and {keep}. Free some space (or keep "
            "fewer checkpoints), then run the same command again to resume.",
        )

    # ------------------------------------------------------------ deleting
    def _remove_folder(self, path: Path, verbosity=logging.DEBUG) -> None:
        """Rename away, then delete: a kill while deleting leaves no half checkpoint."""
        trash = path.with_name(f"{TMP_PREFIX}deleted-{path.name}")
        if trash.exists():
            shutil.rmtree(trash, ignore_errors=True)
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        logger.log(verbosity, "Deleted checkpoint in %s", path)

    def delete_checkpoints(self, *, num_to_keep=1, min_keys=None, max_keys=None, importance_keys=(ckpt_recency,),
                           ckpt_predicate=None, verbosity=logging.INFO):
        """As SpeechBrain's (same arguments), but the newest complete checkpoint is always kept,
        broken folders are never touched, and deletion is rename-then-delete."""
        if num_to_keep < 0:
            raise ValueError("Number of checkpoints to keep must be positive.")
        keys = [{"min_key": key} for key in min_keys or []]
        keys += [{"max_key": key} for key in max_keys or []]
        keys += [{"importance_key": key} for key in importance_keys]
        candidates, protected = set(), set()
        for key_kwargs in keys:
            candidates.update(self.find_checkpoints(ckpt_predicate=ckpt_predicate, **key_kwargs))
            protected.update(self.find_checkpoints(ckpt_predicate=ckpt_predicate, max_num_checkpoints=num_to_keep,
                                                   **key_kwargs))
        newest = self.find_checkpoint()
        if newest is not None:
            protected.add(newest)
        protected_paths = {c.path for c in protected}
        ddp_barrier()
        if if_main_process():
            for ckpt in candidates:
                if ckpt.path not in protected_paths:
                    self._remove_folder(ckpt.path, verbosity)
        ddp_barrier()

    # ------------------------------------------------------------ loading
    def recover_if_possible(self, importance_key=None, max_key=None, min_key=None, ckpt_predicate=None):
        """Load the chosen checkpoint; if it cannot be read, report it and load the next one.

        Raises CheckpointError when checkpoints exist but none can be loaded.
        """
        self.remove_leftovers()
        candidates = self.find_checkpoints(importance_key=importance_key, max_key=max_key, min_key=min_key,
                                           ckpt_predicate=ckpt_predicate)
        failed: List[str] = []
        for ckpt in candidates:
            try:
                self.load_checkpoint(ckpt)
            except Exception as err:  # torch / yaml / missing-file errors of a damaged checkpoint
                reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
                self._unreadable[ckpt.path] = f"cannot be loaded ({reason})"
                self._reported.add(ckpt.path)
                failed.append(f"{ckpt.path.name} ({reason})")
                logger.warning("Checkpoint %s cannot be loaded (%s): trying the previous one.", ckpt.path.name, reason)
                self._reset_loader_positions()
                continue
            if failed:
                logger.warning("Resumed from %s; the newer checkpoint(s) %s could not be read and are left in %s.",
                               ckpt.path.name, "; ".join(failed), self.checkpoints_dir)
            return ckpt
        broken = self.broken_checkpoints()
        if failed or (broken and not candidates and importance_key is None and max_key is None
                      and min_key is None and ckpt_predicate is None):
            listing = "; ".join(failed) or "; ".join(f"{p.name} ({why})" for p, why in broken.items())
            raise CheckpointError(
                f"No checkpoint in {self.checkpoints_dir} can be loaded: {listing}. Move these folders away "
                "(or delete them) to start this run from scratch, or point output_folder elsewhere."
            )
        logger.info("Would load a checkpoint here, but none found yet.")
        return None

    def _reset_loader_positions(self) -> None:
        """Undo a data loader position set by a checkpoint that then failed to load."""
        for obj in self.recoverables.values():
            if isinstance(obj, SaveableDataLoader):
                obj._speechbrain_recovery_skip_to = None
