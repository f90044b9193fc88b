"""The run folder: what a run keeps, how it resumes, and how it stops when asked; and the
checks the command lines make before anything runs.

A run folder holds TRL's ``checkpoint-N`` folders, ``metrics.jsonl`` (one line per logged
step), ``preset.json`` and the pictures. Three promises keep it trustworthy:

* nothing of an earlier run is touched before the new run has its model and data
  (:func:`check_folder` runs first, :func:`clear_earlier_run` only after loading);
* ``--resume`` starts from the newest *complete* checkpoint (:func:`resume_point`) and cuts
  the log back to it, so every step is logged exactly once (:func:`cut_log`);
* Ctrl-C, or the end of a time budget (``--max-minutes``), stops at the end of the current
  step with a checkpoint (:func:`stop_on_interrupt`, :func:`stop_callback`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import struct
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from grit_lite.boxes import QWEN_MIN_PIXELS

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


class OutOfTime(Stopped):
    """The run's time budget ran out: it stopped after a step, with a checkpoint; the
    trained-so-far model is in ``trainer`` (the run's pictures and tables are written)."""

    def __init__(self, step: int, checkpoint: Path, minutes: float, trainer: Any) -> None:
        Exception.__init__(self, f"{minutes:g} minutes are up after step {step}; the run "
                                 f"is saved in {checkpoint}")  # fmt: skip
        self.step, self.checkpoint, self.minutes, self.trainer = step, checkpoint, minutes, trainer


class OutOfMemory(RuntimeError):
    """The GPU ran out of memory mid-run: one line with the knobs that shrink the step and
    the newest complete checkpoint (``checkpoint``, None before the first), no traceback."""

    def __init__(self, preset: Any, step: int, folder: Path, error: BaseException) -> None:
        stage = getattr(error, "stage", "the update")
        try:
            self.checkpoint: Path | None = resume_point(folder)[0]  # what --resume would take
        except (RunFolderError, OSError):
            self.checkpoint = None
        saved = (f"the last complete checkpoint is {self.checkpoint}" if self.checkpoint else
                 f"no checkpoint yet (the first comes at step {preset.save_steps})")  # fmt: skip
        super().__init__(f"out of GPU memory in {stage} of step {step + 1}: "
                         f"{memory_knobs(preset)}; {saved}")  # fmt: skip


def memory_knobs(preset: Any) -> str:
    """What makes a step smaller, as command-line flags with values half the preset's: the
    completions' length (the KV cache and the update's activations), G (the sequences), the
    image cap (image tokens) and, for LoRA, the rank; a full fine-tune can switch to LoRA."""
    flags = [f"--max-completion-length {max(16, preset.max_completion_length // 2)}"]
    if preset.num_generations > 2:
        flags.append(f"--num-generations {max(2, preset.num_generations // 2)}")
    if preset.max_pixels:
        flags.append(f"--max-pixels {max(QWEN_MIN_PIXELS, preset.max_pixels // 2)}")
    flags.append(f"--lora-rank {max(1, preset.lora_rank // 2)}" if preset.lora else "--lora")
    return "retry with one of " + ", ".join(flags)


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


def _safetensors_header(path: Path) -> tuple[int, dict[str, Any]] | None:
    """(header size, header) of a safetensors file: its tensors' shapes and byte offsets."""
    try:
        with path.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
    except (OSError, struct.error, ValueError):
        return None
    header.pop("__metadata__", None)
    return size, header


def _complete_safetensors(path: Path) -> bool:
    """A safetensors file as long as its header says: a cut-off write is shorter."""
    read = _safetensors_header(path)
    if read is None:
        return False
    size, header = read
    ends = [v["data_offsets"][1] for v in header.values()]
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
    if (checkpoint / WEIGHTS_ONLY).is_file():
        return None  # written complete, its optimizer state left out on purpose
    if not (checkpoint / "optimizer.pt").exists() and not (checkpoint / "global_step").exists():
        return "optimizer.pt is missing"
    return None


# ---------------------------------------------------------------------------------------------
# Weights-only checkpoints and the disk a run needs
# ---------------------------------------------------------------------------------------------

WEIGHTS_ONLY = "WEIGHTS_ONLY"  # marks a complete checkpoint kept without optimizer state


def not_restored(checkpoint: Path) -> str | None:
    """What resuming from a weights-only ``checkpoint`` cannot bring back, or None."""
    if not (checkpoint / WEIGHTS_ONLY).is_file():
        return None
    lost = ["the optimizer's state (Adam's moments; a full fine-tune's fp32 masters restart "
            "from the saved weights)"]  # fmt: skip
    if not (checkpoint / "scheduler.pt").is_file():
        lost.append("the learning-rate schedule's place (it starts again)")
    if not any(checkpoint.glob("rng_state*.pth")):
        lost.append("the random state")
    return ", ".join(lost)


def drop_optimizer_state(checkpoint: Path) -> None:
    """Make ``checkpoint`` weights-only: its optimizer state is most of its size (a full
    3B fine-tune: 45 GB of Adam moments and fp32 masters beside 7.5 GB of weights)."""
    (checkpoint / "optimizer.pt").unlink(missing_ok=True)
    for folder in checkpoint.glob("global_step*"):  # DeepSpeed's partitioned states
        shutil.rmtree(folder, ignore_errors=True)
    (checkpoint / WEIGHTS_ONLY).write_text("optimizer state dropped to save disk\n")


def weights_only_callback(keep_newest_resumable: bool = True) -> Any:
    """After each save, every checkpoint but the newest (or every one) becomes weights-only."""
    from transformers import TrainerCallback

    class WeightsOnly(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero:
                found = checkpoints(Path(args.output_dir))
                for checkpoint in found[:-1] if keep_newest_resumable else found:
                    drop_optimizer_state(checkpoint)

    return WeightsOnly()


QWEN_3B_PARAMETERS = 3_754_622_976  # Qwen2.5-VL-3B: 3.09 B language model + 0.67 B vision
QWEN_3B_LORA_64 = 119_734_272  # LoRA r=64 on every language-model projection


def parameters_in(folder: Path) -> int | None:
    """The number of weights in a local model folder's safetensors files, from their headers."""
    import math

    total = 0
    for path in folder.glob("*.safetensors"):
        read = _safetensors_header(path)
        if read is None:
            return None
        total += sum(math.prod(tensor["shape"]) for tensor in read[1].values())
    return total or None


def run_footprint(preset: Any, parameters: int | None = None) -> dict[str, float]:
    """What a run keeps on disk at its fullest, in GB, by kind (an estimate from sizes), for
    a model of ``parameters`` weights (default: Qwen2.5-VL-3B's).

    At a save, the ``keep_checkpoints`` kept ones and the new one exist together. A full
    fine-tune keeps only the newest resumable (the older ones weights-only), so two hold
    optimizer state at that moment; ``weights_only_checkpoints`` keeps none.
    """
    parameters = parameters or QWEN_3B_PARAMETERS
    low_precision = preset.bf16 or preset.fp16
    if preset.lora:
        trainable = QWEN_3B_LORA_64 * preset.lora_rank / 64 * parameters / QWEN_3B_PARAMETERS
        weights, optimizer, final = trainable * 4, trainable * 8, trainable * 4
        reference = 0.0
    else:
        weights = final = parameters * (2 if low_precision else 4)
        optimizer = parameters * (12 if low_precision else 8)  # Adam moments (+ fp32 masters)
        reference = parameters * 2 if preset.beta and preset.model == "random-3b" else 0.0
    kept = preset.keep_checkpoints + 1  # the kept ones and the one being written
    resumable = 0 if preset.weights_only_checkpoints else kept if preset.lora else min(2, kept)
    gb = 1e9
    return {
        "checkpoints": (kept * weights + resumable * optimizer) / gb,
        "final": final / gb,
        "reference": reference / gb,
    }


def _free_bytes(folder: Path) -> int:
    folder = folder.expanduser().absolute()
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free


def check_disk(
    preset: Any, output: str | Path, parameters: int | None = None, free: int | None = None
) -> float:
    """Stop before anything loads when the run would fill its disk; returns the GB needed.

    The message gives the numbers and the flags that fit. ``free`` (bytes) is for tests.
    """
    import dataclasses

    footprint = run_footprint(preset, parameters)
    need = sum(footprint.values())
    free_gb = (_free_bytes(Path(output)) if free is None else free) / 1e9
    if need <= free_gb:
        return need
    parts = ", ".join(f"{k} {v:.1f}" for k, v in footprint.items() if v)
    options = {
        "--keep-checkpoints 1": {"keep_checkpoints": 1},
        "--weights-only-checkpoints": {"weights_only_checkpoints": True},
        "--keep-checkpoints 1 --weights-only-checkpoints": {
            "keep_checkpoints": 1, "weights_only_checkpoints": True},
    }  # fmt: skip
    fits = []
    for flags, change in options.items():
        smaller = sum(run_footprint(dataclasses.replace(preset, **change), parameters).values())
        if smaller <= free_gb:
            fits.append(f"{flags} ({smaller:.1f} GB)")
    advice = ("it fits with " + " or ".join(fits)) if fits else "no flag makes it fit"
    raise RunFolderError(
        f"this run would keep about {need:.1f} GB ({parts}) but {output} has {free_gb:.1f} GB "
        f"free: {advice}; or give --output a folder on a larger disk. Nothing was written."
    )


def reload_weights_on_resume(trainer: Any) -> None:
    """Make ``--resume`` load a full model's weights back.

    ``save_pretrained`` writes Qwen2.5-VL's weights under the hub's key names
    (``model.layers.0...``) while the module tree names them ``model.language_model.layers.0...``;
    ``Trainer`` reloads a checkpoint with a plain ``load_state_dict(strict=False)``, which
    matches no key and leaves the weights where they started. ``from_pretrained`` maps the
    names, so the checkpoint is read with it. Adapters (LoRA) reload correctly already.
    """
    original = trainer._load_from_checkpoint

    def load(resume_from_checkpoint: str, model: Any = None) -> None:
        target = trainer.model if model is None else model
        if hasattr(target, "get_base_model") or trainer.is_deepspeed_enabled:
            return original(resume_from_checkpoint, model)
        saved = type(target).from_pretrained(resume_from_checkpoint, dtype=target.dtype)
        target.load_state_dict(saved.state_dict())  # strict: every weight or an error
        del saved
        optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
        if hasattr(optimizer, "sync_masters"):  # else they would undo the load
            optimizer.sync_masters()  # optimizer.pt, when there is one, overwrites them next

    trainer._load_from_checkpoint = load


def resume_point(folder: Path) -> tuple[Path, list[str]]:
    """The newest complete checkpoint, and a line for each newer one skipped (and why);
    a weights-only checkpoint also gets a line saying what it cannot restore."""
    skipped = []
    for checkpoint in reversed(checkpoints(folder)):
        problem = incomplete(checkpoint)
        if problem is None:
            if (lost := not_restored(checkpoint)) is not None:
                skipped.append(f"{checkpoint} holds weights only: resuming from its weights "
                               f"and step, without {lost}")  # fmt: skip
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


def saved_length(folder: Path) -> tuple[int, int] | None:
    """(max_steps, save_steps) of the run in ``folder``, from its ``preset.json``: a run
    sized to a time budget keeps its length, and its schedule, when it is continued."""
    try:
        saved = json.loads((folder / "preset.json").read_text(encoding="utf-8"))
        return int(saved["max_steps"]), int(saved["save_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


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


_clock = time.monotonic  # a module attribute, so tests can make minutes pass in a step


def stop_callback(flag: threading.Event, max_minutes: float | None = None) -> Any:
    """A TrainerCallback that ends training, with a checkpoint, once ``flag`` is set; with
    ``max_minutes`` it sets ``flag`` itself at the first step end past that many minutes of
    training (counted from the start of ``train``, so a resume gets a budget of its own)."""
    from transformers import TrainerCallback

    class StopAtStepEnd(TrainerCallback):
        def __init__(self) -> None:
            self.start = 0.0
            self.timed_out = threading.Event()  # the budget, not Ctrl-C, ended the run

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.start = _clock()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if max_minutes is not None:
                if _clock() - self.start >= 60 * max_minutes:
                    self.timed_out.set()
                if _anyone(self.timed_out):  # every process stops after the same step
                    self.timed_out.set()
                    flag.set()
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
