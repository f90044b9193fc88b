"""What a run is: every knob in one :class:`Preset`, the named presets, and the model
each one names (found locally or on the hub, failing fast with alternatives when offline).

The defaults of :class:`Preset` are GRIT's official values for Qwen2.5-VL-3B
(``docs/grit_reference.md``); the other presets change only what a smaller machine needs.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from grit_lite import data, tiny

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
    keep_checkpoints: int = 2  # the newest N checkpoints stay on disk (--resume needs one)
    weights_only_checkpoints: bool = False  # no optimizer state in any checkpoint (disk)
    eval_items: int = 16  # held-out scenes scored at the start and the end of a run
    logging_steps: int = 1
    max_pixels: int | None = GRIT_MAX_PIXELS  # image cap: <= 256 image tokens, boxes in that grid
    fast_sampling: bool = True  # static KV cache; decoding compiled into CUDA graphs on a GPU
    vllm: str | None = None  # sample with vLLM: "colocate" (same GPU) or "server" (its own GPU)
    vllm_url: str | None = None  # the vLLM server's address with vllm="server"
    seed: int = 42
    rewards: str = "grit"  # "grit" (as released) or "clean" (notebook 03's variant)
    note: str = field(default="", compare=False)


PRESETS: dict[str, Preset] = {
    "qwen2.5-vl-3b": Preset(
        note="GRIT's official run: full fine-tuning, bf16 mixed precision, one 80 GB GPU "
        "(or 8 with ZeRO-2)."
    ),
    "qwen2.5-vl-3b-lora": Preset(
        lora=True,
        learning_rate=2e-5,  # adapters start at zero: they need ~10x the full-FT rate
        max_per_device=2,
        note="LoRA r=64 on every language-model projection: fits a 24 GB GPU.",
    ),
    "qwen2.5-vl-3b-colab": Preset(
        lora=True,
        learning_rate=2e-5,
        bf16=False,  # a T4 has no bf16: fp16 base weights, fp32 adapters, loss scaling
        fp16=True,
        max_per_device=2,
        max_completion_length=512,  # GRIT's answers are a few hundred tokens at most
        note="LoRA r=64 in fp16 with capped images and completions: a free Colab T4 (16 GB).",
    ),
    "tiny-cpu": Preset(
        model="tiny",
        device="cpu",
        # G 16 and lr 1e-4: with G 8 and lr 2e-4 the run found GRIT's chain for two seeds of
        # three and a format without boxes for the third (data/runs/tiny-cpu/sweep.jsonl);
        # 5e-4 drove the KL above 1 within 5 steps.
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
        eval_items=64,  # seconds on the CPU
        max_pixels=None,  # the tiny processor's own size: 224 px scenes at 112 px, 16 tokens
        note="The shipped tiny model on the 20 synthetic triplets, 2 CPU cores.",
    ),
}


def cpu_stand_in(preset: Preset, steps: int | None = 2, tokens: int = 16) -> Preset:
    """``preset`` in its CPU shape: the shipped tiny model in fp32, ``steps`` steps (None: the
    preset's own length), completions of ``tokens`` and a short prompt bound, four held-out
    scenes; everything else as the preset has it (LoRA or not, activation checkpointing, fast
    sampling, the loss, G and the step's layout, the schedule). How a GPU preset is tested on
    a laptop and in CI: a setting that breaks the run breaks it here too, in seconds."""
    return dataclasses.replace(
        preset, model="tiny", device="cpu", bf16=False, fp16=False,
        max_steps=preset.max_steps if steps is None else steps,
        max_completion_length=min(tokens, preset.max_completion_length),
        max_prompt_length=min(256, preset.max_prompt_length), max_pixels=None, eval_items=4,
        note=f"CPU stand-in: {preset.note}",
    )  # fmt: skip


class TrainError(RuntimeError):
    """A run that cannot start, with what to do instead."""


# ---------------------------------------------------------------------------------------------
# Choosing a preset and finding its model
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
    return card_preset()


def native_bf16(capability: tuple[int, int]) -> bool:
    """bf16 in hardware: compute capability 8.0 (Ampere) or newer.

    Not ``torch.cuda.is_bf16_supported()``: it is True on Turing (7.5) and Volta (7.0) too,
    where bf16 is emulated at a fraction of fp16's speed.
    """
    return tuple(capability) >= (8, 0)


def card_preset(device: int = 0) -> tuple[str, str]:
    """:func:`preset_for_card` for the CUDA card ``device``, read from its properties."""
    card = torch.cuda.get_device_properties(device)
    capability = (card.major, card.minor)
    return preset_for_card(card.total_memory / 2**30, native_bf16(capability), capability)


def preset_for_card(
    memory_gib: float, bf16: bool, capability: tuple[int, int] | None = None
) -> tuple[str, str]:
    """The 3B preset for a GPU of ``memory_gib`` (as torch reports it), and why."""
    where = f"{memory_gib:.0f} GiB GPU"
    if capability is not None:
        where += f", compute capability {capability[0]}.{capability[1]}"
    if not bf16:
        return "qwen2.5-vl-3b-colab", f"{where}, no native bf16: fp16 LoRA"
    if memory_gib < 20:  # a 16 GB card; a "24 GB" one reports 22-24 GiB
        return "qwen2.5-vl-3b-colab", f"{where}: LoRA with capped lengths"
    if memory_gib < 75:  # full fine-tuning peaked at 74.5 GiB on an H100 80GB (eager, fp32)
        return "qwen2.5-vl-3b-lora", f"{where}: LoRA instead of full fine-tuning"
    return "qwen2.5-vl-3b", f"{where}: full fine-tuning"


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
