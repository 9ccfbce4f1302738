"""Command line transcription (and feature extraction) with a BEST-RQ checkpoint folder.

::

    python -m brq_att_alt.transcribe --model results/finetune_ctc/ctc/2024 a.flac b.wav
    python -m brq_att_alt.transcribe --model FOLDER --lm lm.arpa --beam-size 32 a.flac
    python -m brq_att_alt.transcribe --model PRETRAIN_FOLDER --features feats.pt a.flac
    python -m brq_att_alt.transcribe --model EXPORTED_FOLDER a.flac      (python -m brq_att_alt.export)
    brq-transcribe --model FOLDER a.flac            (console script)

Prints one ``FILE<TAB>TRANSCRIPT`` line per file (``--features`` with a pre-training
folder, which has no CTC head, only extracts features). ``--features OUT.pt`` saves
``{file: tensor (num_hidden_states, T', d_model)}`` (front end + every layer) with
``torch.save``. A file that cannot be read (missing, a folder, not audio, NaN / Inf
samples) is reported on stderr and the exit status is 1; the others are still processed. ``--model`` may name a ``CKPT+...``
folder of a run: exactly that checkpoint is used; or a folder written by ``python -m
brq_att_alt.export``, whose n-gram LM (if exported with one) is used unless ``--lm`` names
another or ``--no-lm`` asks for greedy decoding. Bad options (a model folder that does
not exist, ``--device cuda`` without CUDA) give a one-line error and exit status 2.
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

import torch


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="brq-transcribe", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", help="audio files (any rate and channel count; resampled to 16 kHz mono)")
    p.add_argument("--model", required=True, help="output folder of a fine-tuning (or, for --features, pre-training) "
                                                   "run, or an exported model folder")
    lm = p.add_mutually_exclusive_group()
    lm.add_argument("--lm", default=None, help="kenlm n-gram (ARPA or binary) for beam search")
    lm.add_argument("--no-lm", action="store_true", help="greedy decoding even if the exported folder has an LM")
    p.add_argument("--beam-size", type=int, default=None,
                   help="beam search width (default 1 = greedy; 32 with --lm; an exported LM's own)")
    p.add_argument("--alpha", type=float, default=None, help="LM weight (default 0.8; an exported LM's own)")
    p.add_argument("--beta", type=float, default=None, help="word insertion bonus (default 1.5; an exported LM's own)")
    p.add_argument("--features", default=None, metavar="OUT.pt", help="also save every layer's features here")
    p.add_argument("--chunk-seconds", type=float, default=None,
                   help="encode long files in chunks of this length (default: one pass for linear mixers, 30 s for mhsa)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def check_device(device: str) -> Optional[str]:
    """Why ``device`` cannot be used here (one line), or None."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        return f"--device {device}: not a device name (cpu, cuda, cuda:1 ...)"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return f"--device {device}: CUDA is not available on this machine; use --device cpu"
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            return f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)"
    return None


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    from .checkpointing import CheckpointError
    from .data.audio import AudioReadError
    from .inference import BestRQTranscriber

    # with --lm: these defaults; without: None lets an exported folder's LM settings apply
    beam = args.beam_size if args.beam_size is not None else (32 if args.lm else None)
    alpha = args.alpha if args.alpha is not None else (0.8 if args.lm else None)
    beta = args.beta if args.beta is not None else (1.5 if args.lm else None)
    lm_path = "" if args.no_lm else args.lm
    device_error = check_device(args.device)
    if device_error:
        print(f"error: {device_error}", file=sys.stderr)
        return 2
    try:
        asr = BestRQTranscriber.from_folder(args.model, device=args.device, lm_path=lm_path, beam_size=beam,
                                            alpha=alpha, beta=beta, chunk_seconds=args.chunk_seconds)
    except (FileNotFoundError, ImportError, ValueError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not asr.can_transcribe and args.features is None:
        print(f"error: {args.model} has no CTC head (a pre-training folder): it cannot transcribe; "
              "use --features OUT.pt to extract features, or a recipes/finetune_ctc output folder.", file=sys.stderr)
        return 2

    status = 0
    readable = []
    for f in args.files:
        if Path(f).is_dir():
            print(f"error: {f}: is a folder, not an audio file (give the files, e.g. {f}/*.flac)", file=sys.stderr)
            status = 1
        elif not Path(f).is_file():
            print(f"error: {f}: no such file", file=sys.stderr)
            status = 1
        else:
            readable.append(f)
    features = {}
    for start in range(0, len(readable), max(args.batch_size, 1)):
        group = readable[start : start + max(args.batch_size, 1)]
        try:
            texts = asr.transcribe_files(group, batch_size=args.batch_size) if asr.can_transcribe else None
        except AudioReadError:
            texts = None
            ok = []
            for f in group:  # find the bad file(s), keep the others
                try:
                    t = asr.transcribe_file(f) if asr.can_transcribe else None
                    ok.append((f, t))
                except AudioReadError as err:
                    print(f"error: {err}", file=sys.stderr)
                    status = 1
        else:
            ok = list(zip(group, texts if texts is not None else [None] * len(group)))
        for f, text in ok:
            if text is not None:
                print(f"{f}\t{text}", flush=True)
            if args.features:
                try:
                    feats = asr.layer_features(f)
                except AudioReadError as err:  # features only (pre-training folder): read here first
                    print(f"error: {err}", file=sys.stderr)
                    status = 1
                    continue
                features[f] = feats.stacked()[:, 0, : int(feats.lengths[0])].clone()
    if args.features:
        Path(args.features).parent.mkdir(parents=True, exist_ok=True)
        torch.save(features, args.features)
        print(f"features of {len(features)} file(s) saved to {args.features}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
