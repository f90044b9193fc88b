"""The GRPO-GR run: TRL's ``GRPOTrainer``, GRIT's six rewards, GRIT's prompt, 20 triplets.

    python -m grit_lite.train                         # the best preset this machine can run
    python -m grit_lite.train --preset tiny-cpu       # the shipped tiny model, 2 CPU cores
    python -m grit_lite.train --preset qwen2.5-vl-3b  # Qwen2.5-VL-3B-Instruct, one 80 GB GPU
    python -m grit_lite.train --preset tiny-cpu --max-steps 20 --output runs/try --resume
    accelerate launch --config_file configs/zero2.yaml -m grit_lite.train --preset qwen2.5-vl-3b

Every hyper-parameter lives in one :class:`Preset`; the command line overrides a few. A run
writes one folder: TRL checkpoints, ``metrics.jsonl`` (every log line), ``rewards.png`` (one
curve per reward function), and rollouts on the training triplets drawn with their boxes
before (``rollouts_start.png``) and after (``rollouts_end.png``) training.

There is no launcher here: one process per device is ``accelerate launch``'s job, and the
shipped ``configs/*.yaml`` (DDP, DeepSpeed ZeRO-2 as in the official 8-GPU run, ZeRO-3) only
set how. The preset keeps GRIT's 8 completions per optimisation step on any number of
processes by splitting them into per-device batch x gradient accumulation.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import json
import os
import shlex
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from grit_lite import data, gpu, preflight, report, rewards, runs, tiny
from grit_lite.boxes import QWEN_MIN_PIXELS, resized_size_for
from grit_lite.data import GRIT, SYNTHETIC, knows_only_shapes, training_data  # noqa: F401
from grit_lite.grpo import LOSS_TYPES
from grit_lite.presets import (  # noqa: F401 -- the course reaches them as train.X
    GRIT_MAX_PIXELS,
    PRESETS,
    QWEN_3B,
    RANDOM_3B,
    REPO_CONFIGS,
    Preset,
    TrainError,
    auto_preset,
    batch_split,
    preset_for_card,
    resolve_model,
    weight_dtype,
)
from grit_lite.report import draw_rollouts, plot_rewards, read_metrics, rollouts  # noqa: F401


def save_reference(model: Any, path: Path, bf16: bool) -> None:
    """Give an in-memory policy a path for TRL to load its frozen KL reference from.

    TRL reloads the reference from the policy's ``_name_or_path`` (in bf16 under ``bf16``,
    see ``model_init_kwargs``): saving it in that dtype rather than fp32 halves what is
    written and read (15 GB -> 7.5 GB for the 3B).
    """
    state = {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()} if bf16 else None
    model.save_pretrained(path, state_dict=state)
    model.config._name_or_path = str(path)


def load_model(preset: Preset, model: Any = None, processor: Any = None) -> tuple[Any, Any]:
    """The policy and its processor. A LoRA run's adapters are not put on here: the trainer
    gets the base and :func:`lora_config` (TRL's way), so its KL reference is the base with
    the adapters switched off, not a second, fp32 copy of them."""
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    if model is None and preset.model == RANDOM_3B:
        model, processor = random_3b(weight_dtype(preset))
    if model is None:
        path = resolve_model(preset.model)
        kwargs = {}
        if preset.max_pixels:  # smart_resize keeps the area within [shortest, longest]
            kwargs["size"] = {"shortest_edge": QWEN_MIN_PIXELS, "longest_edge": preset.max_pixels}
        try:
            model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
                path, dtype=weight_dtype(preset), device_map=gpu_placement(preset)
            )
            processor = AutoProcessor.from_pretrained(path, **kwargs)
        except (OSError, ValueError) as error:  # not found on the hub, not a Qwen2.5-VL folder
            raise TrainError(f"cannot load the model {preset.model}: {error}") from None
    if preset.fp16:
        gpu.vision_in_fp32(model)  # fp16 overflows in Qwen's vision MLP
    return model, processor


def gpu_placement(preset: Preset) -> dict[str, int] | None:
    """Where ``from_pretrained`` puts the weights: straight onto this process's GPU (Colab
    has 12.7 GB of host RAM, the 3B in fp32 on the CPU first would be 15 GB), or None (the
    CPU; and DeepSpeed ZeRO-3, which places the shards itself)."""
    if preset.device != "cuda" or not torch.cuda.is_available():
        return None
    if os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3":
        return None
    return {"": int(os.environ.get("LOCAL_RANK", "0"))}


LORA_TARGETS = (
    r"model\.language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
)


def lora_config(preset: Preset) -> Any:
    """PEFT's LoRA settings of a run: rank and alpha of ``preset`` on every projection of the
    language model (the vision tower stays frozen, as in GRIT's LoRA-free run)."""
    from peft import LoraConfig

    return LoraConfig(r=preset.lora_rank, lora_alpha=preset.lora_alpha,
                      target_modules=LORA_TARGETS)  # fmt: skip


def random_3b(dtype: torch.dtype = torch.bfloat16) -> tuple[Any, Any]:
    """Qwen2.5-VL-3B's exact shape with random weights and the in-repo processor.

    For measuring speed and memory where the real weights cannot be downloaded: every
    matrix has the 3B's shape, so a step costs what it costs with the real model (a random
    model never stops early, so completions run to the length limit: the worst case).
    """
    from transformers import Qwen2_5_VLForConditionalGeneration

    processor = tiny.build_processor(tiny.train_tokenizer(tiny.course_texts()))
    config = tiny.qwen25_vl_3b_config(tiny.special_ids(processor.tokenizer))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype)
    return model, processor


def grpo_config(
    preset: Preset,
    output: str | Path,
    world_size: int = 1,
    raw_log: bool = False,
    save: bool = True,
) -> Any:
    """TRL's ``GRPOConfig`` for ``preset``: GRIT's loss, KL and batch shape. ``raw_log``
    keeps the Trainer's own bar and printed log dicts instead of the course's bar; without
    ``save`` no checkpoint is written (the preflight's steps)."""
    from trl import GRPOConfig

    per_device, accumulation = batch_split(preset, world_size)
    fast = preset.fast_sampling and not preset.vllm
    vllm = {}
    if preset.vllm:
        vllm = {"use_vllm": True, "vllm_mode": preset.vllm, "vllm_server_base_url": preset.vllm_url}
    if preset.vllm == "colocate":  # TRL's defaults (0.3 of the card, the model's 128k) do not
        vllm |= gpu.vllm_colocate_settings(preset)  # fit beside the policy being trained
    reference = "bfloat16" if preset.bf16 else "float16" if preset.fp16 else None
    return GRPOConfig(
        output_dir=str(output),
        learning_rate=preset.learning_rate,
        lr_scheduler_type=preset.lr_scheduler_type,
        warmup_steps=preset.warmup,
        num_generations=preset.num_generations,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        beta=preset.beta,
        loss_type=preset.loss_type,
        scale_rewards="group",
        use_bias_correction_kl=False,  # the plain k3 estimator of the paper (notebook 04)
        max_completion_length=preset.max_completion_length,
        # one static cache for every step, sized for the longest prompt: no recompiles
        cache_implementation="static" if fast else None,
        generation_kwargs={"max_cache_len": preset.max_prompt_length + preset.max_completion_length}
        if fast
        else None,
        temperature=preset.temperature,
        num_train_epochs=preset.num_train_epochs,
        max_steps=preset.max_steps,
        bf16=preset.bf16,
        fp16=preset.fp16,
        model_init_kwargs={"dtype": reference} if reference else None,  # the frozen reference
        use_cpu=preset.device == "cpu",
        activation_checkpointing=preset.gradient_checkpointing,  # the new name of the knob
        save_total_limit=preset.keep_checkpoints,
        save_only_model=preset.weights_only_checkpoints,
        save_strategy="steps" if save else "no",
        save_steps=preset.save_steps,
        logging_steps=preset.logging_steps,
        seed=preset.seed,
        data_seed=preset.seed,
        report_to="none",
        dataloader_num_workers=0,
        remove_unused_columns=False,
        log_completions=False,
        disable_tqdm=not raw_log,
        **vllm,
    )


REWARD_SETS = ("grit", "clean", "grit+iou")


def reward_functions(name: str, processor: Any = None) -> list[Any]:
    """GRIT's six rewards as released, notebook 03's clean variants swapped in, or GRIT's six
    plus the opt-in box-place reward (``grit+iou``: the IoU of the think boxes with the
    annotated ones, measured in the pixels ``processor`` shows the model)."""
    if name == "grit":
        return list(rewards.GRIT_REWARDS)
    if name == "clean":
        return list(rewards.CLEAN_REWARDS)
    if name == "grit+iou":
        seen = (lambda w, h: resized_size_for(processor, w, h)) if processor is not None else None
        return [*rewards.GRIT_REWARDS, rewards.make_box_place_reward(seen)]
    raise TrainError(f"unknown reward set {name!r}: choose one of {', '.join(REWARD_SETS)}")


DATA_CHOICES = ("synthetic", "grit")


def data_arg(text: str) -> str:
    """An argparse type for ``--data``: ``synthetic``, ``grit`` or an existing folder."""
    if text in DATA_CHOICES:
        return text
    try:
        return runs.folder_arg(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text} is neither 'synthetic', 'grit' nor a folder with GRIT's training files"
        ) from None


# ---------------------------------------------------------------------------------------------
# What a run writes besides checkpoints
# ---------------------------------------------------------------------------------------------


def tune_for_speed(trainer: Any, preset: Preset) -> None:
    """The GPU fixes of :mod:`grit_lite.gpu` that ``preset`` asks for, on a built trainer."""
    gpu.stop_hook_leak(trainer.model)
    if preset.lora:
        gpu.own_adapter_lists(trainer.model)
    if trainer.args.cache_implementation == "static":
        gpu.keep_one_static_cache(trainer.model)
        gpu.compile_decoding(trainer)
    gpu.eager_fallback(trainer)  # and sampling/compiled, for every run: 0 where never compiled
    sharded = trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled  # they keep masters
    low_precision = next(trainer.model.parameters()).dtype != torch.float32
    if not preset.lora and low_precision and not sharded:
        trainer.optimizer = gpu.master_weight_optimizer(trainer, trainer.model)


def time_generation(trainer: Any, single_thread: bool = False) -> None:
    """Log ``generation_time`` (s per step) next to TRL's ``step_time`` (generation + update),
    and ``sampling/decode_time``: the part of it after the prompt's prefill, the only part
    that grows with the completions' length (the preflight scales it).

    The split says where a step goes: on a CPU or with long completions, sampling dominates.
    ``single_thread`` samples on one CPU thread: the tiny model's matrices are so small that
    a second OpenMP thread mostly spin-waits (decoding was ~20x slower on a busy 2-core box).
    An out-of-memory error while sampling is marked as such for :class:`runs.OutOfMemory`.
    """
    original = trainer._generate
    base = gpu._base(trainer.model)
    prefill = inspect.unwrap(base._prefill)  # not an earlier trainer's timer
    prefilled: list[float] = []

    @functools.wraps(prefill)
    def timed_prefill(*args: Any, **kwargs: Any) -> Any:
        out = prefill(*args, **kwargs)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        prefilled.append(time.perf_counter())
        return out

    base._prefill = timed_prefill

    def timed(prompts: Any) -> Any:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        threads = torch.get_num_threads()
        if single_thread:
            torch.set_num_threads(1)
        prefilled.clear()
        start = time.perf_counter()
        try:
            out = original(prompts)
        except torch.OutOfMemoryError as error:
            error.stage = "sampling"  # type: ignore[attr-defined]
            raise
        finally:
            torch.set_num_threads(threads)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        end = time.perf_counter()
        metrics = trainer._metrics["train"]
        metrics["generation_time"].append(end - start)
        metrics["sampling/decode_time"].append(end - (prefilled[-1] if prefilled else start))
        return out

    trainer._generate = timed


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def _parameters(preset: Preset, model: Any = None) -> int | None:
    """How many weights the run's model has, known before it loads (None: the 3B's)."""
    if model is not None:
        return sum(p.numel() for p in model.parameters())
    if preset.model == RANDOM_3B:
        return None
    path = Path(resolve_model(preset.model))  # fails fast on a bad name or offline
    return runs.parameters_in(path) if path.is_dir() else None


def train(
    preset: Preset,
    output: str | Path,
    resume: bool = False,
    data_choice: str | None = None,
    model: Any = None,
    processor: Any = None,
    items: list[tuple[data.Record, Any]] | None = None,
    n_rollouts: int = 4,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
    overwrite: bool = False,
    raw_log: bool = False,
    heldout: bool = False,
    max_minutes: float | None = None,
    data_source: str | None = None,
    trial: bool = False,
) -> Any:
    """Run GRPO-GR with ``preset``; returns the trainer. Writes the run folder ``output``.

    An earlier run in ``output`` is continued (``resume``) or replaced (``overwrite``), and
    nothing of it is touched until the model and the data have loaded. Ctrl-C stops after
    the current step with a checkpoint and raises :class:`grit_lite.runs.Stopped`.
    ``progress`` draws one bar (``raw_log``: the Trainer's bar and log dicts instead);
    ``heldout`` scores the start and the trained model on held-out scenes at the end.
    ``items`` (already loaded triplets, described by ``data_source``) replaces ``data_choice``
    (see :func:`training_data`); ``preset.json`` keeps which triplets the run trained on.
    With ``max_minutes`` the run stops after the first step past that many minutes, with a
    checkpoint, ``final/``, its pictures and its tables, and raises
    :class:`grit_lite.runs.OutOfTime`. Out of GPU memory it raises
    :class:`grit_lite.runs.OutOfMemory`: one line with the knobs to turn and the last
    checkpoint. A ``trial`` (the preflight) saves nothing and hands a ``model`` passed in
    back as it came: LoRA layers taken off, so the real run can put on its own.
    """
    from transformers.utils import logging as hf_logging
    from trl import GRPOTrainer

    if preset.vllm and (problem := gpu.vllm_problem() or gpu.vllm_colocate_problem(preset)):
        raise TrainError(problem)
    output = runs.check_folder(output, resume, overwrite)
    if not trial:
        runs.check_disk(preset, output, _parameters(preset, model))
    if preset.device == "cpu":
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if items is None:
        say = functools.partial(print, flush=True)
        items, data_source = training_data(data_choice, preset.model, say=say)
    model, processor = load_model(preset, model, processor)
    # Loaded: from here on the run folder may change.
    main = int(os.environ.get("RANK", "0")) == 0  # accelerate launch: one process per device
    checkpoint = None
    if resume:
        checkpoint, skipped = runs.resume_point(output)
        for line in [*skipped, *runs.changed_settings(output / "preset.json", preset)]:
            print(line, flush=True)
        if main:
            runs.cut_log(output / "metrics.jsonl", runs.checkpoint_step(checkpoint))
    elif main:
        runs.clear_earlier_run(output)
    if main:
        output.mkdir(parents=True, exist_ok=True)
        record = {**dataclasses.asdict(preset), "data": data_source or "given by the caller"}
        (output / "preset.json").write_text(json.dumps(record, indent=1))
    adapters = preset.lora and not hasattr(model, "peft_config")  # not already a PeftModel
    if preset.beta and not preset.lora and not model.config._name_or_path:
        save_reference(model, output / "reference", preset.bf16)
    quiet_libraries()
    bars_were_on = hf_logging.is_progress_bar_enabled()
    if not raw_log:
        hf_logging.disable_progress_bar()  # "Loading weights" / "Writing model shards" bars
    stop = threading.Event()
    stopper = runs.stop_callback(stop, max_minutes)
    weights_only = preset.weights_only_checkpoints or (preset.device == "cuda" and not preset.lora)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_functions(preset.rewards, processor),
        args=grpo_config(preset, output, world_size, raw_log, save=not trial),
        train_dataset=data.to_dataset(items),
        processing_class=processor,
        peft_config=lora_config(preset) if adapters else None,
        callbacks=[report.metrics_callback(output / "metrics.jsonl"), stopper,
                   *([runs.weights_only_callback(not preset.weights_only_checkpoints)]
                     if weights_only else []),
                   *([report.progress_bar()] if progress and not raw_log else []),
                   *callbacks],
    )  # fmt: skip
    tune_for_speed(trainer, preset)
    runs.reload_weights_on_resume(trainer)
    time_generation(trainer, single_thread=preset.device == "cpu")
    if not raw_log:  # the bar above, or nothing; metrics.jsonl has every log line
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    shown = items[:: max(1, len(items) // max(1, n_rollouts))][:n_rollouts]  # both families
    tokens = min(preset.max_completion_length, 256)
    if main and n_rollouts and not resume:
        start = report.rollouts(trainer.model, processor, shown, tokens)
        report.write_rollouts(output, "start", start, shown)
    held = data.eval_split(preset.eval_items) if heldout and main else []
    before = report.heldout_summary(trainer.model, processor, held, tokens) if held else None
    try:
        with runs.stop_on_interrupt(stop):
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        interrupted = stop.is_set() and not stopper.timed_out.is_set()  # Ctrl-C
        if not (trial or interrupted):  # a finished run, or one its budget ended: the model
            trainer.save_model(str(output / "final"))
    except torch.OutOfMemoryError as error:
        trainer.accelerator.free_memory()
        raise runs.OutOfMemory(preset, trainer.state.global_step, output, error) from None
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
        if trial and adapters:  # the caller's model as it came, for the run to adapt
            trainer.model.unload()
    if main and not trial and (output / "metrics.jsonl").is_file():
        report.plot_rewards(report.read_metrics(output / "metrics.jsonl"), output / "rewards.png")
    step = trainer.state.global_step
    if interrupted:
        raise runs.Stopped(step, runs.checkpoints(output)[-1])
    out_of_time = stopper.timed_out.is_set() and step < trainer.state.max_steps
    if main and n_rollouts:
        end = report.rollouts(trainer.model, processor, shown, tokens)
        report.write_rollouts(output, "end", end, shown)
    if before is not None:
        after = report.heldout_summary(trainer.model, processor, held, tokens)
        report.write_heldout(output, before, after, len(held))
    if out_of_time:  # the model so far is saved, drawn and scored above; the run can go on
        raise runs.OutOfTime(step, runs.checkpoints(output)[-1], max_minutes or 0.0, trainer)
    return trainer


def quiet_libraries() -> None:
    """Silence the warnings a user of this course cannot act on."""
    # TRL 1.16 calls ``model.is_gradient_checkpointing`` and ``gradient_checkpointing_enable``
    # / ``_disable`` around every generation; transformers 5 renamed them ``*activation_*``
    # and warns each time. Our own code sets the new name (``activation_checkpointing``).
    warnings.filterwarnings("ignore", message=r"`(is_)?gradient_checkpointing\w*` is deprecated",
                            category=FutureWarning)  # fmt: skip


def with_overrides(preset: Preset, args: argparse.Namespace) -> Preset:
    """``preset`` with the command line's overrides. A new G keeps the prompts per step
    (GRIT: 2), so the completions per step scale with it."""
    changes = {
        "model": args.model,
        "max_steps": args.max_steps,
        "learning_rate": args.lr,
        "rewards": args.rewards,
        "seed": args.seed,
        "beta": args.beta,
        "temperature": args.temperature,
        "warmup": args.warmup,
        "loss_type": args.loss_type,
        "lora": True if args.lora else None,
        "vllm": args.vllm,
        "vllm_url": args.vllm_url,
        "save_steps": args.save_steps,
        "keep_checkpoints": args.keep_checkpoints,
        "weights_only_checkpoints": True if args.weights_only_checkpoints else None,
        "max_completion_length": args.max_completion_length,
        "max_pixels": args.max_pixels,
    }
    if args.lora_rank:  # alpha follows the rank: the adapters' scale (alpha / r) is kept
        changes |= {"lora_rank": args.lora_rank, "lora_alpha": 2 * args.lora_rank}
    if args.epochs is not None:  # epochs count only when max_steps is not positive
        changes |= {"num_train_epochs": args.epochs, "max_steps": -1}
    if args.num_generations:
        prompts = preset.completions_per_step // preset.num_generations
        changes["num_generations"] = args.num_generations
        changes["completions_per_step"] = prompts * args.num_generations
    return dataclasses.replace(preset, **{k: v for k, v in changes.items() if v is not None})


def resume_command(argv: Sequence[str], preset: str, output: str | Path) -> str:
    """The command that continues this run: the same options, ``--resume``, no
    ``--overwrite`` (that would delete what it resumes), preset and folder made explicit."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--preset", "--output"):
            skip = True
        elif arg not in ("--overwrite", "--resume") and not arg.startswith(
            ("--preset=", "--output=")
        ):
            kept.append(arg)
    words = ["python", "-m", "grit_lite.train", "--preset", preset, "--output", str(output)]
    return shlex.join([*words, *kept, "--resume"])


def parser() -> argparse.ArgumentParser:
    """The command line: every value checked when parsed, one line saying what to do."""
    positive_int, positive = runs.number_arg(int, 0, True), runs.number_arg(float, 0, True)
    p = argparse.ArgumentParser(
        prog="python -m grit_lite.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", default="auto", choices=["auto", *PRESETS])
    p.add_argument("--check", action="store_true",
                   help="preflight: two short steps, then the card, decoding path, speed, "
                   "memory and projected run time; writes nothing under runs/")  # fmt: skip
    p.add_argument("--model", help="override the preset's model (hub id or local folder)")
    p.add_argument("--data", type=data_arg, metavar="synthetic|grit|FOLDER",
                   help="the triplets: synthetic, GRIT's own from the hub, or a local copy "
                   "(default: synthetic for the tiny model, else GRIT's, falling back "
                   "to synthetic offline)")  # fmt: skip
    p.add_argument("--output", help="run folder (default: runs/<preset>)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--max-steps", type=positive_int, help="optimisation steps")
    length.add_argument("--epochs", type=positive, help="train by epochs instead of steps")
    p.add_argument("--max-minutes", type=positive, metavar="M",
                   help="stop after the first step past M minutes of training, with a "
                   "checkpoint to --resume from")  # fmt: skip
    p.add_argument("--save-steps", type=positive_int, help="checkpoint every N steps")
    p.add_argument("--lr", type=positive, help="learning rate")
    p.add_argument("--lora", action="store_true", help="LoRA instead of full fine-tuning")
    p.add_argument("--lora-rank", type=positive_int, help="LoRA's rank r (alpha: 2r)")
    p.add_argument("--max-completion-length", type=runs.number_arg(int, 16, False),
                   metavar="TOKENS", help="completion tokens at most (GRIT: 1000)")  # fmt: skip
    p.add_argument("--max-pixels", type=runs.number_arg(int, QWEN_MIN_PIXELS, False),
                   help="image cap in pixels (GRIT: 200704, 256 image tokens)")  # fmt: skip
    p.add_argument("--rewards", choices=REWARD_SETS,
                   help="grit+iou adds a reward for the boxes' place (not GRIT's)")  # fmt: skip
    p.add_argument("--seed", type=runs.number_arg(int, 0, False))
    p.add_argument("--beta", type=runs.number_arg(float, 0, False), help="KL weight (0: no KL)")
    p.add_argument("--temperature", type=positive, help="sampling temperature")
    p.add_argument("--warmup", type=runs.number_arg(float, 0, False),
                   help="warm-up steps, or a fraction when < 1")  # fmt: skip
    p.add_argument("--loss-type", choices=LOSS_TYPES, help="how token losses are averaged")
    p.add_argument("--num-generations", type=runs.number_arg(int, 2, False),
                   help="G >= 2, completions per prompt (prompts per step kept)")  # fmt: skip
    p.add_argument("--vllm", choices=["colocate", "server"],
                   help="sample with vLLM (pip install vllm)")  # fmt: skip
    p.add_argument("--vllm-url", help="the vLLM server, e.g. http://localhost:8000")
    folder = p.add_mutually_exclusive_group()
    folder.add_argument("--resume", action="store_true",
                        help="continue from the last complete checkpoint")  # fmt: skip
    folder.add_argument("--overwrite", action="store_true",
                        help="replace an earlier run in the output folder")  # fmt: skip
    p.add_argument("--rollouts", type=runs.number_arg(int, 0, False), default=4,
                   help="greedy samples drawn before and after (0: none)")  # fmt: skip
    p.add_argument("--keep-checkpoints", type=runs.number_arg(int, 0, True),
                   help="how many of the newest checkpoints stay on disk (default 2)")  # fmt: skip
    p.add_argument("--weights-only-checkpoints", action="store_true",
                   help="checkpoints without optimizer state: far less disk, but a resume "
                   "restarts Adam and the schedule")  # fmt: skip
    p.add_argument("--no-heldout", action="store_true",
                   help="skip the held-out table of the start and the trained model")  # fmt: skip
    p.add_argument("--raw-log", action="store_true",
                   help="the Trainer's own bar and every log line printed as a dict")  # fmt: skip
    return p


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    cli = parser()
    args = cli.parse_args(argv)
    if args.vllm_url and args.vllm != "server":
        cli.error("--vllm-url needs --vllm server")
    if args.check:  # two short steps here, nothing under runs/; it checks versions itself
        overrides = functools.partial(with_overrides, args=args)
        raise SystemExit(preflight.check(args.preset, train, _parameters, overrides).code)
    for problem in (gpu.version_problem(), args.vllm and gpu.vllm_problem()):
        if problem:
            raise SystemExit(f"error: {problem}")  # before any weights are built
    name = args.preset
    if name == "auto":
        name, why = auto_preset()
        print(f"preset {name}: {why}")
    preset = with_overrides(PRESETS[name], args)
    output = args.output or f"runs/{name}"
    again = resume_command(argv, name, output)
    budget = ""
    try:
        loaded: dict[str, Any] = {}
        if args.max_minutes:
            preset, loaded = budgeted(preset, name, output, args)
        if preset is not None:
            train(preset, output, resume=args.resume, data_choice=args.data,
                  n_rollouts=args.rollouts, overwrite=args.overwrite, raw_log=args.raw_log,
                  heldout=not args.no_heldout, max_minutes=args.max_minutes,
                  **loaded)  # fmt: skip
    except (TrainError, data.DataError, runs.RunFolderError) as error:
        raise SystemExit(f"error: {error}") from None
    except runs.OutOfMemory as error:
        hint = f"; continue with: {again}" if error.checkpoint else ""
        raise SystemExit(f"error: {error}{hint}") from None
    except torch.OutOfMemoryError:  # loading the model, before any step
        raise SystemExit("error: out of GPU memory loading the model: choose a smaller preset "
                         "(qwen2.5-vl-3b-lora, qwen2.5-vl-3b-colab)") from None
    except runs.OutOfTime as stopped:  # asked for: not a failure
        budget = f"\n{stopped}\ncontinue with: {again}"
    except runs.Stopped as stopped:
        print(f"{stopped}\ncontinue with: {again}", file=sys.stderr)
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        found = runs.checkpoints(Path(output)) if Path(output).is_dir() else []
        kept = f"the last checkpoint is {found[-1]}" if found else "no checkpoint was written"
        hint = f"\ncontinue with: {again}" if found else ""
        print(f"\ninterrupted: {kept}{hint}", file=sys.stderr)
        raise SystemExit(130) from None
    if preset is None:
        raise SystemExit(1)  # the preflight said why
    folder = Path(output)
    if (folder / "heldout.txt").is_file():
        print("\n" + (folder / "heldout.txt").read_text(encoding="utf-8"), end="")
    pictures = [folder / n for n in ("rewards.png", "rollouts_start.png", "rollouts_end.png")]
    print("\n".join(["", f"run folder: {folder}", *(f"  {p}" for p in pictures if p.is_file())]))
    if budget:
        print(budget)


def budgeted(
    preset: Preset, name: str, output: str, args: argparse.Namespace
) -> tuple[Preset | None, dict[str, Any]]:
    """``--max-minutes`` from the command line, as notebook 06 does it: the preflight's
    projection sets how many steps the minutes buy, so the schedule (the cosine's decay)
    ends within them. The model and triplets are loaded once, for the preflight and the
    run; the run's own length (the preset's, ``--max-steps`` or ``--epochs``) is the most
    they buy. A resumed run keeps the length it was given."""
    if args.resume:
        saved = runs.saved_length(Path(output))
        return (dataclasses.replace(preset, max_steps=saved[0], save_steps=saved[1])
                if saved else preset), {}  # fmt: skip
    runs.check_folder(output, args.resume, args.overwrite)  # before a model is loaded
    say = functools.partial(print, flush=True)
    items, source = training_data(args.data, preset.model, say=say)
    model, processor = load_model(preset)
    loaded = {"model": model, "processor": processor, "items": items, "data_source": source}
    sized = preflight.size_to_budget(preset, args.max_minutes, name, train,
                                     functools.partial(_parameters, model=model), Path(output),
                                     **loaded)  # fmt: skip
    return sized, loaded


if __name__ == "__main__":
    main()
