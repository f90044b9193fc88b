"""The run folder: what a run keeps, how it resumes, and how it stops when asked; and the
checks the command lines make before anything runs.

A run folder holds TRL's ``checkpoint-N`` folders, ``metrics.jsonl`` (one line per logged
step), ``preset.json`` and the pictures. Three promises keep it trustworthy:

* nothing of an earlier run is touched before the new run has its model and data
  (:func:`check_folder` runs first, :func:`clear_earlier_run` only after loading);
* ``--resume`` starts from the newest *complete* checkpoint (:func:`resume_point`) and cuts
  the log back to it, so every step is logged exactly once (:func:`cut_log`);
* Ctrl-C stops at the end of the current step with a checkpoint (:func:`stop_on_interrupt`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import struct
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RECORDS = ("metrics.jsonl", "preset.json", "rewards.png", "final", "reference", "README.md",
           "heldout.txt", "heldout.json",
           "rollouts_start.jsonl", "rollouts_start.png", "rollouts_end.jsonl",
           "rollouts_end.png")  # fmt: skip


class RunFolderError(RuntimeError):
    """A run folder that cannot be used as asked, with what to do instead."""


class Stopped(Exception):
    """Training stopped when asked (Ctrl-C), after a step, with a checkpoint on disk."""

    def __init__(self, step: int, checkpoint: Path) -> None:
        super().__init__(f"stopped after step {step}; the run is saved in {checkpoint}")
        self.step, self.checkpoint = step, checkpoint


def checkpoints(folder: Path) -> list[Path]:
    """``checkpoint-N`` folders, oldest first (by N, not by name: 100 after 25)."""
    found = [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def check_writable(folder: str | Path) -> Path:
    """``folder`` if it is, or can be made, a folder this process can write into."""
    folder = Path(folder).expanduser()
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise RunFolderError(f"cannot write to {folder}: {existing} is a file")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise RunFolderError(f"cannot write to {folder}: {existing} is not writable")
    return folder


def check_folder(folder: str | Path, resume: bool, overwrite: bool) -> Path:
    """The run folder, checked before anything loads: writable, and no earlier run in it
    unless ``resume`` continues it or ``overwrite`` replaces it. Touches no file."""
    folder = check_writable(folder)
    earlier = folder.is_dir() and (checkpoints(folder) or (folder / "metrics.jsonl").exists())
    if resume and not checkpoints(folder):
        raise RunFolderError(f"nothing to resume in {folder}: it holds no checkpoint-N folder")
    if earlier and not resume and not overwrite:
        raise RunFolderError(
            f"{folder} holds an earlier run: add --resume to continue it, --overwrite to "
            "replace it, or choose another --output"
        )
    return folder


def clear_earlier_run(folder: Path) -> None:
    """Remove an earlier run's records and checkpoints (``--overwrite``), so that its
    curves do not join the new ones and ``--resume`` can never pick its checkpoints."""
    for path in [*checkpoints(folder), *(folder / name for name in RECORDS)]:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _complete_safetensors(path: Path) -> bool:
    """A safetensors file as long as its header says: a cut-off write is shorter."""
    try:
        with path.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
    except (OSError, struct.error, ValueError):
        return False
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    return path.stat().st_size == 8 + size + max(ends, default=0)


def _complete_zip(path: Path) -> bool:
    """torch.save writes a zip; a cut-off one has no central directory at its end."""
    try:
        with zipfile.ZipFile(path):
            return True
    except (OSError, zipfile.BadZipFile):
        return False


def incomplete(checkpoint: Path) -> str | None:
    """What is missing or cut off in ``checkpoint``, or None if it can be resumed from."""
    try:
        json.loads((checkpoint / "trainer_state.json").read_text())["global_step"]
    except (OSError, ValueError, KeyError):
        return "trainer_state.json is missing or unreadable"
    weights = [*checkpoint.glob("*.safetensors")]
    if not weights:
        return "it holds no weights (*.safetensors)"
    for path in weights:
        if not _complete_safetensors(path):
            return f"{path.name} is cut off"
    for name in ("optimizer.pt", "scheduler.pt"):
        if (checkpoint / name).exists() and not _complete_zip(checkpoint / name):
            return f"{name} is cut off"
    if not (checkpoint / "optimizer.pt").exists() and not (checkpoint / "global_step").exists():
        return "optimizer.pt is missing"
    return None


def resume_point(folder: Path) -> tuple[Path, list[str]]:
    """The newest complete checkpoint, and a line for each newer one skipped (and why)."""
    skipped = []
    for checkpoint in reversed(checkpoints(folder)):
        problem = incomplete(checkpoint)
        if problem is None:
            return checkpoint, skipped
        skipped.append(f"skipped {checkpoint}: {problem}")
    why = "; ".join(skipped)
    raise RunFolderError(f"no complete checkpoint to resume from in {folder}: {why}")


def changed_settings(saved: Path, preset: Any) -> list[str]:
    """A line for each setting a resumed run changes from the run it continues (a new
    ``max_steps`` is usual; a new G or learning rate is worth a second look)."""
    import dataclasses

    try:
        before = json.loads(saved.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    now = {k: v for k, v in dataclasses.asdict(preset).items() if k != "note"}
    changed = [key for key in now if key in before and before[key] != now[key]]
    return [f"resuming with {k} = {now[k]!r} (the run used {before[k]!r})" for k in changed]


def checkpoint_step(checkpoint: Path) -> int:
    return int(json.loads((checkpoint / "trainer_state.json").read_text())["global_step"])


def cut_log(path: Path, step: int) -> int:
    """Keep the log lines of steps up to ``step`` (the checkpoint a resume starts from):
    the steps after it are trained again and logged again. Returns the lines dropped."""
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut off by a crash
        if isinstance(row, dict) and row.get("step", 0) <= step:
            kept.append(line)
    path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    return len(lines) - len(kept)


def _anyone(flag: threading.Event) -> bool:
    """Whether ``flag`` is set in any process: under ``accelerate launch`` every process
    must stop after the same step, or the others wait for it forever."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag.is_set()
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    seen = torch.tensor([float(flag.is_set())], device=device)
    dist.all_reduce(seen, op=dist.ReduceOp.MAX)
    return bool(seen.item())


def stop_callback(flag: threading.Event) -> Any:
    """A TrainerCallback that ends training, with a checkpoint, once ``flag`` is set."""
    from transformers import TrainerCallback

    class StopAtStepEnd(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if _anyone(flag):
                flag.set()
                control.should_save = True
                control.should_training_stop = True

    return StopAtStepEnd()


@contextmanager
def stop_on_interrupt(flag: threading.Event) -> Iterator[None]:
    """The first Ctrl-C sets ``flag`` (the run stops after its current step); a second one
    interrupts at once. Only the main thread can receive signals: elsewhere, nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: Any) -> None:
        if flag.is_set():
            raise KeyboardInterrupt
        flag.set()
        print("\nCtrl-C: stopping after this step with a checkpoint (Ctrl-C again: at once)",
              flush=True)  # fmt: skip

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def number_arg(kind: type, low: float, strict: bool) -> Any:
    """An argparse type: a ``kind`` above ``low`` (``strict``) or at least ``low``."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value != value or value in (float("inf"), float("-inf")):  # nan, inf
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if value < low or (strict and value == low):
            relation = "greater than" if strict else "at least"
            raise argparse.ArgumentTypeError(f"must be {relation} {low:g}, got {text}")
        return value

    return parse


def folder_arg(text: str) -> str:
    """An argparse type: an existing folder."""
    if not Path(text).expanduser().is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return text
