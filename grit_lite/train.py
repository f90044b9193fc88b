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
import json
import os
import shlex
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from grit_lite import data, gpu, rewards, runs, tiny
from grit_lite.boxes import QWEN_MIN_PIXELS, qwen_to_original, resized_for
from grit_lite.format import build_prompt, draw_boxes, parse_completion
from grit_lite.grpo import LOSS_TYPES

HUB = "https://huggingface.co"
QWEN_3B = "Qwen/Qwen2.5-VL-3B-Instruct"
RANDOM_3B = "random-3b"
GRIT_MAX_PIXELS = 256 * 28 * 28  # the official trainer's image cap: at most 256 image tokens
REPO_CONFIGS = data.REPO_DIR / "configs"  # accelerate / DeepSpeed launch configs


@dataclass(frozen=True)
class Preset:
    """Every knob of a run. Defaults are GRIT's official values for Qwen2.5-VL-3B."""

    model: str = QWEN_3B  # hub id, local folder, "tiny" (shipped) or "random-3b" (benchmarks)
    device: str = "cuda"  # "cuda" or "cpu"
    lora: bool = False  # LoRA adapters on the language model instead of full fine-tuning
    lora_rank: int = 64
    lora_alpha: int = 128
    learning_rate: float = 2e-6
    lr_scheduler_type: str = "cosine"
    warmup: float = 0.0  # steps, or a fraction of them when < 1
    num_generations: int = 4  # G: completions per prompt
    completions_per_step: int = 8  # 2 prompts x 4 generations per optimisation step
    max_per_device: int = 4  # largest per-device batch before accumulating gradients
    beta: float = 0.01  # KL weight (k3 estimator against the frozen reference)
    loss_type: str = "grpo"  # per-sequence token mean, then batch mean
    max_prompt_length: int = 750  # GRIT's bound; our prompts are far shorter (TRL no longer cuts)
    max_completion_length: int = 1000
    temperature: float = 1.0
    num_train_epochs: float = 200.0  # over 20 triplets: 2000 optimisation steps
    max_steps: int = -1  # > 0 overrides the epochs
    bf16: bool = True  # bf16 weights and compute; a full fine-tune's optimiser keeps fp32 masters
    fp16: bool = False  # for GPUs without bf16 (T4): fp16 autocast with loss scaling, LoRA only
    gradient_checkpointing: bool = True  # pays on the 3B (long completions), not on tiny
    save_steps: int = 50
    logging_steps: int = 1
    max_pixels: int | None = None  # cap the image size the processor feeds the model (3B)
    fast_sampling: bool = True  # static KV cache; decoding compiled into CUDA graphs on a GPU
    vllm: str | None = None  # sample with vLLM: "colocate" (same GPU) or "server" (its own GPU)
    vllm_url: str | None = None  # the vLLM server's address with vllm="server"
    seed: int = 42
    rewards: str = "grit"  # "grit" (as released) or "clean" (notebook 03's variant)
    note: str = field(default="", compare=False)


PRESETS: dict[str, Preset] = {
    "qwen2.5-vl-3b": Preset(
        max_pixels=GRIT_MAX_PIXELS,
        note="GRIT's official run: full fine-tuning, bf16 mixed precision, one 80 GB GPU "
        "(or 8 with ZeRO-2)."
    ),
    "qwen2.5-vl-3b-lora": Preset(
        lora=True,
        learning_rate=2e-5,  # adapters start at zero: they need ~10x the full-FT rate
        max_per_device=2,
        max_pixels=GRIT_MAX_PIXELS,
        note="LoRA r=64 on every language-model projection: fits a 24 GB GPU.",
    ),
    "qwen2.5-vl-3b-colab": Preset(
        lora=True,
        learning_rate=2e-5,
        bf16=False,  # a T4 has no bf16: fp16 base weights, fp32 adapters, loss scaling
        fp16=True,
        max_per_device=2,
        max_completion_length=512,  # GRIT's answers are a few hundred tokens at most
        max_pixels=GRIT_MAX_PIXELS,  # GRIT's cap: 448 x 448 at most, 256 image tokens
        note="LoRA r=64 in fp16 with capped images and completions: a free Colab T4 (16 GB).",
    ),
    "tiny-cpu": Preset(
        model="tiny",
        device="cpu",
        # G 16 and lr 1e-4: with G 8 and lr 2e-4 (the record before session 17) the run found
        # GRIT's chain for two seeds of three and a format without boxes for the third
        # (data/runs/tiny-cpu/sweep.jsonl); 5e-4 drove the KL above 1 within 5 steps.
        learning_rate=1e-4,
        num_generations=16,
        completions_per_step=32,  # still 2 prompts per step, as GRIT's
        max_per_device=16,
        max_completion_length=128,
        temperature=1.0,
        max_steps=200,  # minutes on 2 idle cores (time: data/runs/tiny-cpu/run.json)
        bf16=False,
        gradient_checkpointing=False,
        fast_sampling=False,  # CUDA graphs are a GPU feature; the recorded run decodes eagerly
        save_steps=25,
        note="The shipped tiny model on the 20 synthetic triplets, 2 CPU cores.",
    ),
}


class TrainError(RuntimeError):
    """A run that cannot start, with what to do instead."""


# ---------------------------------------------------------------------------------------------
# Choosing and loading
# ---------------------------------------------------------------------------------------------


def hub_problem(timeout: float = 5.0) -> str | None:
    """Why the Hugging Face hub cannot be used right now, or None if it can."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return "HF_HUB_OFFLINE is set"
    return data._probe(os.environ.get("HF_ENDPOINT") or HUB, timeout)


def _cached(model_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(model_id, "config.json"), str)


def resolve_model(name: str, timeout: float = 5.0) -> str:
    """A loadable path or hub id for ``name``; fails fast with the alternatives when offline."""
    if name == RANDOM_3B:
        return name
    if name == "tiny":
        if not (tiny.SHIPPED / "config.json").is_file():
            raise TrainError(f"the tiny model is missing from {tiny.SHIPPED}: git checkout data/")
        return str(tiny.SHIPPED)
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise TrainError(f"no model folder at {name}: check the path (a hub id is owner/name)")
    if "/" not in name:
        raise TrainError(
            f"unknown model {name!r}: give a hub id (e.g. {QWEN_3B}), a local folder, or 'tiny'"
        )
    if _cached(name):
        return name
    problem = hub_problem(timeout)
    if problem is not None:
        raise TrainError(
            f"cannot fetch {name} from the hub ({problem}). Alternatives: download it where "
            f"you are online and pass the folder (--model /path/to/{name.split('/')[-1]}), "
            "or run the CPU preset: python -m grit_lite.train --preset tiny-cpu"
        )
    return name


def auto_preset() -> tuple[str, str]:
    """The best preset this machine can run, and why."""
    if not torch.cuda.is_available():
        return "tiny-cpu", "no CUDA device"
    problem = None if _cached(QWEN_3B) else hub_problem()
    if problem is not None:
        return "tiny-cpu", f"CUDA is available but {QWEN_3B} is not ({problem})"
    memory = torch.cuda.get_device_properties(0).total_memory / 2**30
    return preset_for_card(memory, torch.cuda.is_bf16_supported())


def preset_for_card(memory_gib: float, bf16: bool) -> tuple[str, str]:
    """The 3B preset for a GPU of ``memory_gib`` (as torch reports it), and why."""
    if not bf16:
        return "qwen2.5-vl-3b-colab", f"{memory_gib:.0f} GiB GPU without bf16: fp16 LoRA"
    if memory_gib < 20:  # a 16 GB card; a "24 GB" one reports 22-24 GiB
        return "qwen2.5-vl-3b-colab", f"{memory_gib:.0f} GiB GPU: LoRA with capped lengths"
    if memory_gib < 75:  # full fine-tuning peaked at 74.5 GiB on an H100 80GB (eager, fp32)
        return "qwen2.5-vl-3b-lora", f"{memory_gib:.0f} GiB GPU: LoRA instead of full fine-tuning"
    return "qwen2.5-vl-3b", f"{memory_gib:.0f} GiB GPU"


def batch_split(preset: Preset, world_size: int) -> tuple[int, int]:
    """(per-device batch, gradient accumulation) giving ``completions_per_step`` in total."""
    per_step = preset.completions_per_step
    if per_step % world_size:
        raise TrainError(f"{per_step} completions per step do not split over {world_size} GPUs")
    local = per_step // world_size
    per_device = max(d for d in range(1, min(local, preset.max_per_device) + 1) if local % d == 0)
    return per_device, local // per_device


def weight_dtype(preset: Preset) -> torch.dtype:
    """The dtype the policy's weights are stored in.

    Sampling reads every weight once per token, so it should read them in the dtype the
    matrices multiply in: bf16 under ``bf16``. A full fine-tune cannot be *updated* in bf16
    (GRIT's lr of 2e-6 moves a weight of size 0.02 by ~2e-6, far below bf16's rounding step
    of 1.2e-4 there: in pure bf16 only 3.8 % of such weights changed in 10 steps), so its
    optimiser keeps fp32 masters (:class:`grit_lite.gpu.MasterWeightAdamW`), as DeepSpeed's
    bf16 mode does in GRIT's ZeRO-2 run. Under ``fp16`` only a LoRA base (frozen) is fp16.
    """
    if preset.bf16:
        return torch.bfloat16
    return torch.float16 if preset.fp16 and preset.lora else torch.float32


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
    """The policy (with LoRA adapters if asked) and its processor."""
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
                path, dtype=weight_dtype(preset)
            )
            processor = AutoProcessor.from_pretrained(path, **kwargs)
        except (OSError, ValueError) as error:  # not found on the hub, not a Qwen2.5-VL folder
            raise TrainError(f"cannot load the model {preset.model}: {error}") from None
    if preset.lora:
        from peft import LoraConfig, get_peft_model

        targets = (
            r"model\.language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
        )
        config = LoraConfig(
            r=preset.lora_rank, lora_alpha=preset.lora_alpha, target_modules=targets
        )
        model = get_peft_model(model, config)
    return model, processor


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
    preset: Preset, output: str | Path, world_size: int = 1, progress: bool = True
) -> Any:
    """TRL's ``GRPOConfig`` for ``preset``: GRIT's loss, KL and batch shape."""
    from trl import GRPOConfig

    per_device, accumulation = batch_split(preset, world_size)
    fast = preset.fast_sampling and not preset.vllm
    vllm = {}
    if preset.vllm:
        vllm = {"use_vllm": True, "vllm_mode": preset.vllm, "vllm_server_base_url": preset.vllm_url}
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
        gradient_checkpointing=preset.gradient_checkpointing,
        save_strategy="steps",
        save_steps=preset.save_steps,
        logging_steps=preset.logging_steps,
        seed=preset.seed,
        data_seed=preset.seed,
        report_to="none",
        dataloader_num_workers=0,
        remove_unused_columns=False,
        log_completions=False,
        disable_tqdm=not progress,
        **vllm,
    )


def reward_functions(name: str) -> list[Any]:
    """GRIT's six rewards as released, or with notebook 03's clean variants swapped in."""
    if name == "grit":
        return list(rewards.GRIT_REWARDS)
    if name == "clean":
        return list(rewards.CLEAN_REWARDS)
    raise TrainError(f"unknown reward set {name!r}: choose 'grit' or 'clean'")


def training_data(folder: str | None) -> list[tuple[data.Record, Any]]:
    """The shipped 20 synthetic triplets, or GRIT's real ones from ``folder``."""
    if folder is None:
        return data.train_split()
    records = data.load_grit_train(folder)
    return [(r, data.open_image(r.image_path)) for r in records]


# ---------------------------------------------------------------------------------------------
# What a run writes besides checkpoints
# ---------------------------------------------------------------------------------------------


def metrics_callback(path: Path) -> Any:
    """A TrainerCallback that appends every log line (with its step) to ``path``."""
    from transformers import TrainerCallback

    class Metrics(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if state.is_world_process_zero and logs:
                if torch.cuda.is_available() and "reward" in logs:
                    logs["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
                with path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    return Metrics()


def tune_for_speed(trainer: Any, preset: Preset) -> None:
    """The GPU fixes of :mod:`grit_lite.gpu` that ``preset`` asks for, on a built trainer."""
    gpu.stop_hook_leak(trainer.model)
    if trainer.args.cache_implementation == "static":
        gpu.compile_decoding(trainer)
    sharded = trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled  # they keep masters
    low_precision = next(trainer.model.parameters()).dtype != torch.float32
    if not preset.lora and low_precision and not sharded:
        trainer.optimizer = gpu.master_weight_optimizer(trainer, trainer.model)


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

    trainer._load_from_checkpoint = load


def time_generation(trainer: Any, single_thread: bool = False) -> None:
    """Log ``generation_time`` (s per step) next to TRL's ``step_time`` (generation + update).

    The split says where a step goes: on a CPU or with long completions, sampling dominates.
    ``single_thread`` samples on one CPU thread: the tiny model's matrices are so small that
    a second OpenMP thread mostly spin-waits (decoding was ~20x slower on a busy 2-core box).
    """
    original = trainer._generate

    def timed(prompts: Any) -> Any:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        threads = torch.get_num_threads()
        if single_thread:
            torch.set_num_threads(1)
        start = time.perf_counter()
        try:
            out = original(prompts)
        finally:
            torch.set_num_threads(threads)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        trainer._metrics["train"]["generation_time"].append(time.perf_counter() - start)
        return out

    trainer._generate = timed


def _finish(fig: Any, out: str | Path | None) -> Any:
    """Lay out ``fig``; with ``out``, save it (small: 80 dpi) and close it so runs keep no
    figures open. Returns the figure for notebooks."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=80)
        plt.close(fig)
    return fig


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The log lines of a run's ``metrics.jsonl`` that carry rewards (one per step)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [row for row in map(json.loads, lines) if "reward" in row]


def plot_rewards(metrics: Sequence[dict[str, Any]], out: str | Path | None = None) -> Any:
    """One panel per reward function (mean over the step's completions) plus the total."""
    import matplotlib.pyplot as plt

    keys = sorted({k for row in metrics for k in row if k.startswith("rewards/") and "/mean" in k})
    keys.append("reward")
    fig, axes = plt.subplots(1, len(keys), figsize=(2.6 * len(keys), 2.4), squeeze=False)
    steps = [row["step"] for row in metrics]
    for ax, key in zip(axes[0], keys, strict=True):
        values = [row.get(key, float("nan")) for row in metrics]
        ax.plot(steps, values, lw=1)
        name = key.split("/")[1] if "/" in key else "total"
        ax.set_title(name.removesuffix("_reward"), fontsize=8)
        ax.set_ylim(0, rewards.REWARD_MAX.get(name, rewards.GRIT_MAX_TOTAL) * 1.05)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    return _finish(fig, out)


def rollouts(
    model: Any, processor: Any, items: Sequence[tuple[data.Record, Any]], max_new_tokens: int
) -> list[dict[str, Any]]:
    """Greedy completions to the GRIT prompt, parsed and scored with the reward preset; the
    think boxes are mapped from the pixels the model saw to the image's, ready to draw."""
    prompts = [build_prompt(r.question) for r, _ in items]
    texts = tiny.generate(model, processor, prompts, [im for _, im in items], max_new_tokens)
    out = []
    for (record, image), text in zip(items, texts, strict=True):
        seen = resized_for(processor, image)
        boxes = [qwen_to_original(b, image.size, seen) for b in parse_completion(text).boxes]
        scores = {
            fn.__name__: fn([text], answer=[record.answer], dataset=[record.dataset])[0]
            for fn in rewards.GRIT_REWARDS
        }
        out.append({"question": record.question, "answer": record.answer, "completion": text,
                    "boxes": boxes, "rewards": scores})  # fmt: skip
    return out


def draw_rollouts(
    rows: Sequence[dict[str, Any]],
    items: Sequence[tuple[data.Record, Any]],
    out: str | Path | None = None,
) -> Any:
    """The rollouts' think boxes on their images, with question, answer and total reward."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(3 * len(rows), 3.6), squeeze=False)
    for ax, row, (_, image) in zip(axes[0], rows, items, strict=True):
        ax.imshow(draw_boxes(image, row["boxes"], width=2))
        total = sum(row["rewards"].values())
        answer = parse_completion(row["completion"]).answer
        ax.set_title(f"{row['question']}\nsaid {answer!r} (truth {row['answer']}) R={total:.2f}",
                     fontsize=7)  # fmt: skip
        ax.axis("off")
    return _finish(fig, out)


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def train(
    preset: Preset,
    output: str | Path,
    resume: bool = False,
    data_folder: str | None = None,
    model: Any = None,
    processor: Any = None,
    n_rollouts: int = 4,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
    overwrite: bool = False,
) -> Any:
    """Run GRPO-GR with ``preset``; returns the trainer. Writes the run folder ``output``.

    An earlier run in ``output`` is continued (``resume``) or replaced (``overwrite``), and
    nothing of it is touched until the model and the data have loaded. Ctrl-C stops after
    the current step with a checkpoint and raises :class:`grit_lite.runs.Stopped`.
    """
    from trl import GRPOTrainer

    if preset.vllm and (problem := gpu.vllm_problem()):
        raise TrainError(problem)
    output = runs.check_folder(output, resume, overwrite)
    if preset.device == "cpu":
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    items = training_data(data_folder)
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
        (output / "preset.json").write_text(json.dumps(dataclasses.asdict(preset), indent=1))
    if preset.beta and not preset.lora and not model.config._name_or_path:
        save_reference(model, output / "reference", preset.bf16)
    args = grpo_config(preset, output, world_size, progress)
    stop = threading.Event()
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_functions(preset.rewards),
        args=args,
        train_dataset=data.to_dataset(items),
        processing_class=processor,
        callbacks=[metrics_callback(output / "metrics.jsonl"), runs.stop_callback(stop),
                   *callbacks],
    )  # fmt: skip
    tune_for_speed(trainer, preset)
    reload_weights_on_resume(trainer)
    time_generation(trainer, single_thread=preset.device == "cpu")
    if not progress:  # quiet: no bar and no printed log dict (metrics.jsonl has every line)
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    shown = items[:: max(1, len(items) // max(1, n_rollouts))][:n_rollouts]  # both families
    tokens = min(preset.max_completion_length, 256)
    if main and n_rollouts and not resume:
        start = rollouts(trainer.model, processor, shown, tokens)
        _write_rollouts(output, "start", start, shown)
    with runs.stop_on_interrupt(stop):
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if main and (output / "metrics.jsonl").is_file():
        plot_rewards(read_metrics(output / "metrics.jsonl"), output / "rewards.png")
    if stop.is_set():
        raise runs.Stopped(trainer.state.global_step, runs.checkpoints(output)[-1])
    trainer.save_model(str(output / "final"))
    if main and n_rollouts:
        end = rollouts(trainer.model, processor, shown, tokens)
        _write_rollouts(output, "end", end, shown)
    return trainer


def _write_rollouts(output: Path, stage: str, rows: list[dict[str, Any]], items: Any) -> None:
    with (output / f"rollouts_{stage}.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    draw_rollouts(rows, items, output / f"rollouts_{stage}.png")


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
    }
    if args.epochs is not None:  # epochs count only when max_steps is not positive
        changes |= {"num_train_epochs": args.epochs, "max_steps": -1}
    if args.num_generations:
        prompts = preset.completions_per_step // preset.num_generations
        changes["num_generations"] = args.num_generations
        changes["completions_per_step"] = prompts * args.num_generations
    return dataclasses.replace(preset, **{k: v for k, v in changes.items() if v is not None})


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


def _folder(text: str) -> str:
    """An argparse type: an existing folder."""
    if not Path(text).expanduser().is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return text


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
    positive_int, positive = number_arg(int, 0, True), number_arg(float, 0, True)
    p = argparse.ArgumentParser(
        prog="python -m grit_lite.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", default="auto", choices=["auto", *PRESETS])
    p.add_argument("--model", help="override the preset's model (hub id or local folder)")
    p.add_argument("--data", type=_folder, help="folder with GRIT's real training files")
    p.add_argument("--output", help="run folder (default: runs/<preset>)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--max-steps", type=positive_int, help="optimisation steps")
    length.add_argument("--epochs", type=positive, help="train by epochs instead of steps")
    p.add_argument("--save-steps", type=positive_int, help="checkpoint every N steps")
    p.add_argument("--lr", type=positive, help="learning rate")
    p.add_argument("--lora", action="store_true", help="LoRA instead of full fine-tuning")
    p.add_argument("--rewards", choices=["grit", "clean"])
    p.add_argument("--seed", type=number_arg(int, 0, False))
    p.add_argument("--beta", type=number_arg(float, 0, False), help="KL weight (0: no KL)")
    p.add_argument("--temperature", type=positive, help="sampling temperature")
    p.add_argument("--warmup", type=number_arg(float, 0, False),
                   help="warm-up steps, or a fraction when < 1")  # fmt: skip
    p.add_argument("--loss-type", choices=LOSS_TYPES, help="how token losses are averaged")
    p.add_argument("--num-generations", type=number_arg(int, 2, False),
                   help="G >= 2, completions per prompt (prompts per step kept)")  # fmt: skip
    p.add_argument("--vllm", choices=["colocate", "server"],
                   help="sample with vLLM (pip install vllm)")  # fmt: skip
    p.add_argument("--vllm-url", help="the vLLM server, e.g. http://localhost:8000")
    folder = p.add_mutually_exclusive_group()
    folder.add_argument("--resume", action="store_true",
                        help="continue from the last complete checkpoint")  # fmt: skip
    folder.add_argument("--overwrite", action="store_true",
                        help="replace an earlier run in the output folder")  # fmt: skip
    p.add_argument("--rollouts", type=number_arg(int, 0, False), default=4,
                   help="greedy samples drawn before and after (0: none)")  # fmt: skip
    return p


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    cli = parser()
    args = cli.parse_args(argv)
    if args.vllm_url and args.vllm != "server":
        cli.error("--vllm-url needs --vllm server")
    if args.vllm and (problem := gpu.vllm_problem()):
        raise SystemExit(f"error: {problem}")  # before any weights are built
    name = args.preset
    if name == "auto":
        name, why = auto_preset()
        print(f"preset {name}: {why}")
    preset = with_overrides(PRESETS[name], args)
    output = args.output or f"runs/{name}"
    again = resume_command(argv, name, output)
    try:
        train(preset, output, resume=args.resume, data_folder=args.data,
              n_rollouts=args.rollouts, overwrite=args.overwrite)  # fmt: skip
    except (TrainError, data.DataError, runs.RunFolderError) as error:
        raise SystemExit(f"error: {error}") from None
    except runs.Stopped as stopped:
        print(f"{stopped}\ncontinue with: {again}", file=sys.stderr)
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        found = runs.checkpoints(Path(output)) if Path(output).is_dir() else []
        kept = f"the last checkpoint is {found[-1]}" if found else "no checkpoint was written"
        hint = f"\ncontinue with: {again}" if found else ""
        print(f"\ninterrupted: {kept}{hint}", file=sys.stderr)
        raise SystemExit(130) from None
    print(f"run folder: {output}")


if __name__ == "__main__":
    main()
