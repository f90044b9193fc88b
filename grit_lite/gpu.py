"""What the GPU run needs beyond TRL's defaults: fast sampling, bf16 weights, vLLM.

A GRPO step samples the group's completions and then updates the policy once. With
Qwen2.5-VL-3B and 1000-token completions, sampling is nearly the whole step, and eager
``model.generate`` spends most of each token launching kernels, not reading weights. This
module holds the three fixes the GPU presets use, each small enough to read:

* :func:`compile_decoding`: a static KV cache and compiled decoding (CUDA graphs);
* :func:`stop_hook_leak`: one input-gradient hook, not two more every step;
* :class:`MasterWeightAdamW`: bf16 weights that sampling reads directly, stepped through fp32
  master copies (DeepSpeed's bf16 mode, the official run's, on one GPU);

and :func:`vllm_problem`, checked before any weights are built when ``--vllm`` is asked for.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

# TRL 1.16 accepts these vLLM versions (trl.import_utils.is_vllm_available).
VLLM_RANGE = ("0.22.0", "0.31.0")
VLLM_PIP = f'pip install "vllm>={VLLM_RANGE[0]},<={VLLM_RANGE[1]}"'


# The oldest releases that have what the course uses (pyproject.toml says the same; a test
# checks). transformers 5.23: GRPOConfig's `activation_checkpointing`; TRL 1.0: a generation
# config whose `disable_compile` compile_decoding can turn off (0.26-0.29 pass the flag to
# every generate call, so compilation silently never happens); PEFT 0.20: transformers
# 5.23's own minimum; datasets 4.7 and accelerate 1.4: TRL 1.0's; torch 2.6: transformers'.
FLOORS = {
    "torch": "2.6",
    "torchvision": "0.21",
    "transformers": "5.23",
    "trl": "1.0",
    "peft": "0.20",
    "accelerate": "1.4",
    "datasets": "4.7",
}


def version_problem(installed: dict[str, str | None] | None = None) -> str | None:
    """What is too old (or missing) among the run's libraries, with the ``pip install`` line
    that fixes it, or None. Read from package metadata: nothing is imported. ``installed``
    maps names to versions (tests); by default the installed ones."""
    from packaging.version import Version

    if installed is None:
        installed = {}
        for name in FLOORS:
            try:
                installed[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                installed[name] = None
    old = {
        name: installed.get(name)
        for name, floor in FLOORS.items()
        if installed.get(name) is None
        or Version(Version(str(installed[name])).base_version) < Version(floor)
    }
    if not old:
        return None
    found = ", ".join(f"{n} {v or 'not installed'} (needs >= {FLOORS[n]})" for n, v in old.items())
    fix = " ".join(f'"{n}>={FLOORS[n]}"' for n in old)
    return f"too old for this course: {found}. Upgrade with: pip install -U {fix}"


def compile_decoding(trainer: Any, compile_config: Any = None) -> None:
    """Let ``generate`` compile its decoding step into CUDA graphs.

    TRL builds its ``GenerationConfig`` with ``disable_compile=True``, so a static cache
    alone is still decoded eagerly: ~36 layers' worth of kernel launches and Python per
    token. With the cache sized once (``max_cache_len``: prompt + completion bound, set by
    ``grpo_config``) every step decodes the same shapes, so the graph is captured once and
    replayed. ``compile_config`` is for tests (``transformers`` only compiles on GPUs unless
    told otherwise).
    """
    config = trainer.generation_config
    if config.cache_implementation != "static":
        raise ValueError("compiled decoding needs cache_implementation='static' in GRPOConfig")
    config.disable_compile = False
    if compile_config is not None:
        config.compile_config = compile_config


def eager_fallback(trainer: Any, say: Any = print) -> None:
    """Make sampling survive its fast path: a compile error falls back to eager decoding.

    Inductor, Triton and CUDA graphs fail in many ways on a card or driver we never tried
    (an old T4 driver, a new torch), always at the first compiled call and with a traceback
    that would end the run with no checkpoint. Here such a failure prints one line, turns
    compilation off, and samples the same prompts again eagerly; the run goes on. Each step
    logs ``sampling/compiled`` (1 or 0) to ``metrics.jsonl``: which path it took.
    """
    original = trainer._generate

    def generate(prompts: Any) -> Any:
        config = trainer.generation_config
        try:
            out = original(prompts)
        except Exception as error:  # inductor, Triton and CUDA raise many types
            if config.disable_compile:
                raise  # eager decoding failed: not ours to hide
            first = (str(error).strip().splitlines() or [""])[0][:160]
            say(f"compiled decoding failed ({type(error).__name__}: {first}); "
                "continuing with eager decoding")  # fmt: skip
            config.disable_compile = True
            torch._dynamo.reset()
            out = original(prompts)
        trainer._metrics["train"]["sampling/compiled"].append(float(not config.disable_compile))
        return out

    trainer._generate = generate


def keep_one_static_cache(model: Any) -> dict[str, Any]:
    """Give every ``generate`` call the same static KV cache, reset, instead of a new one.

    transformers builds a fresh ``StaticCache`` per call (``_prepare_static_cache``). The
    compiled graph does not mind, but CUDA graphs read their inputs at fixed addresses: a
    new cache means a new recording every step, and torch drops graphs that re-record too
    often. The cache is rebuilt only when its shape changes (another batch size or length).
    Returns the holder of the current cache (tests read its storage).
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    build = base._prepare_static_cache
    kept: dict[str, Any] = {}

    def prepare(**kwargs: Any) -> Any:
        key = tuple((k, v) for k, v in sorted(kwargs.items()) if k != "model_kwargs")
        if kept.get("key") == key:
            kept["cache"].reset()  # zeroes keys, values and lengths in place
        else:
            kept.clear()  # free the old cache before the new one is allocated
            kept.update(key=key, cache=build(**kwargs))
        return kept["cache"]

    base._prepare_static_cache = prepare
    return kept


def own_adapter_lists(model: Any) -> int:
    """Give each LoRA layer its own list of active adapters; returns how many it changed.

    PEFT hands every tuner layer the *same* list object when adapters are set. Dynamo guards
    on it, and at the second step a guard fails and the whole decoder compiles again
    (minutes on Colab's two CPUs). Separate but equal lists keep one compiled frame.
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    changed = 0
    for module in model.modules():
        if isinstance(module, BaseTunerLayer) and isinstance(module._active_adapter, list):
            module._active_adapter = list(module._active_adapter)
            changed += 1
    return changed


def vision_in_fp32(model: Any) -> Any:
    """Keep the vision tower in fp32, autocast off inside it, under an fp16 preset (T4).

    Qwen2-VL and Qwen2.5-VL overflow in fp16 in the vision MLP (transformers issues #33294
    and #33312: -inf activations, "!!!!" answers), and TRL samples with
    ``torch.multinomial``, which stops at the first NaN probability. The language model stays
    fp16; the image features are cast to its dtype where they enter it. Returns the tower
    (None for a model without one).
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    visual = getattr(getattr(base, "model", None), "visual", None)
    if visual is None or getattr(visual, "in_fp32", False):
        return visual  # not a Qwen-VL layout, or done already
    visual.float()
    visual.in_fp32 = True
    forward = visual.forward

    def fp32_forward(*args: Any, **kwargs: Any) -> Any:
        device = next(visual.parameters()).device.type
        with torch.autocast(device, enabled=False):
            return forward(*args, **kwargs)

    visual.forward = fp32_forward
    return visual


def stop_hook_leak(model: Any) -> None:
    """Keep exactly one "inputs require grad" hook on the input embeddings.

    TRL turns gradient checkpointing off to sample and to score, and back on after. Each
    time ``transformers`` switches it on, it registers a new forward hook on the embeddings
    and, outside PEFT's own integration, never removes the old one: two more every step,
    thousands by the end of a run, each run on every forward (and each a reason for a
    compiled graph to be rebuilt). Here a new registration first removes the previous one.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    register = base.enable_input_require_grads

    def register_once() -> None:
        base.disable_input_require_grads()
        register()

    base.enable_input_require_grads = register_once


def input_hooks(model: Any) -> int:
    """How many forward hooks sit on ``model``'s input embeddings (tests and debugging)."""
    return len(model.get_input_embeddings()._forward_hooks)


class MasterWeightAdamW(torch.optim.AdamW):
    """AdamW that updates fp32 master copies of bf16 (or fp16) parameters.

    The model holds bf16 weights, so sampling reads 7 GB per token for the 3B instead of
    casting 15 GB of fp32 weights under autocast at every token. The optimiser keeps an fp32
    copy of each weight: GRIT's lr of 2e-6 moves a weight by far less than bf16's rounding
    step, and only an fp32 copy accumulates those moves. After each step the bf16 weight is
    the master rounded, which is what autocast multiplied with before; the loss is the same.
    DeepSpeed's bf16 mode (GRIT's ZeRO-2 run) works this way too.

    The step runs over chunks of about ``chunk_bytes`` so that the fp32 gradients and the
    foreach temporaries never exist for the whole model at once.
    """

    def __init__(self, params: Iterable[Any], chunk_bytes: int = 2**30, **kwargs: Any) -> None:
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.model_params: list[torch.Tensor] = []
        master_groups = []
        for group in groups:
            weights = list(group["params"])
            self.model_params += weights
            masters = [w.detach().float().clone() for w in weights]
            master_groups.append({**group, "params": masters})
        super().__init__(master_groups, **kwargs)
        self.masters = [m for g in self.param_groups for m in g["params"]]
        self.chunks: list[list[int]] = [[]]
        size = 0
        for i, master in enumerate(self.masters):
            if self.chunks[-1] and size + master.numel() * 4 > chunk_bytes:
                self.chunks.append([])
                size = 0
            self.chunks[-1].append(i)
            size += master.numel() * 4

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for chunk in self.chunks:
            for i in chunk:
                grad = self.model_params[i].grad
                self.masters[i].grad = None if grad is None else grad.float()
            super().step()  # AdamW skips every master whose grad is None: this chunk only
            for i in chunk:
                self.masters[i].grad = None
                self.model_params[i].copy_(self.masters[i])
        return loss

    @torch.no_grad()
    def sync_masters(self) -> None:
        """Masters copied from the model's weights: after weights were loaded without an
        optimizer state (a weights-only checkpoint), the masters must start from them."""
        for master, weight in zip(self.masters, self.model_params, strict=True):
            master.copy_(weight)

    def state_dict(self) -> dict[str, Any]:
        """AdamW's state plus the masters: a resumed run must not restart from bf16 weights."""
        state = super().state_dict()
        state["master_weights"] = list(self.masters)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        masters = state.pop("master_weights", None)
        super().load_state_dict(state)
        with torch.no_grad():
            if masters is None:  # an older checkpoint: start from its weights
                masters = self.model_params
            for master, saved in zip(self.masters, masters, strict=True):
                master.copy_(saved)


def master_weight_optimizer(trainer: Any, model: Any) -> MasterWeightAdamW:
    """The optimiser ``Trainer.create_optimizer`` would build, with fp32 masters.

    Same weight-decay groups and AdamW settings as the trainer's own.
    """
    args = trainer.args
    decay = set(trainer.get_decay_parameter_names(model))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if n in decay], "weight_decay": args.weight_decay},
        {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
    ]
    fused = next(model.parameters()).is_cuda
    return MasterWeightAdamW(
        [g for g in groups if g["params"]],
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
        fused=fused or None,
    )


def vllm_problem() -> str | None:
    """Why ``--vllm`` cannot run here (with the command that fixes it), or None if it can.

    Checked from the package metadata alone: importing vLLM takes seconds and may touch
    the GPU, and a missing vLLM must be reported before any weights are built.
    """
    if importlib.util.find_spec("vllm") is None:
        return f"--vllm needs vLLM, which is not installed. Install it with: {VLLM_PIP}"
    from packaging.version import Version

    version = Version(Version(importlib.metadata.version("vllm")).base_version)
    low, high = map(Version, VLLM_RANGE)
    if not low <= version <= high:
        return f"vLLM {version} is installed; TRL supports {low} to {high}: {VLLM_PIP}"
    return None


# ---------------------------------------------------------------------------------------------
# Which card, which preset, how long: estimates from published numbers, never measurements
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    """A GPU as its maker publishes it: usable memory, bf16, bandwidth, dense fp16/bf16 peak."""

    name: str
    memory_gib: float
    bf16: bool
    bandwidth_gb_s: float
    tflops: float


CARDS = (
    Card("T4 (free Colab)", 15.0, False, 320, 65),
    Card("L4", 22.0, True, 300, 121),
    Card("A100 40GB", 39.4, True, 1555, 312),
    Card("A100 80GB", 79.2, True, 2039, 312),
    Card("H100 80GB", 79.6, True, 3350, 989),
)


def step_bound(
    card: Card,
    parameters: float,
    weight_bytes: float,
    sequences: int,
    prompt_tokens: int,
    completion_tokens: int,
) -> tuple[float, float]:
    """Seconds a GRPO step cannot beat on ``card``: (sampling, update).

    Sampling decodes all sequences together, one token each per decoding step, and each
    decoding step reads every weight once: ``completion_tokens x weight_bytes / bandwidth``.
    The update is about five passes over the step's tokens at 2 FLOPs per parameter each
    (the reference's forward, the policy's forward, its backward at twice a forward, and
    the forward that gradient checkpointing recomputes), at the card's peak. Real steps are
    slower: the H100's measured eager step (51.9 s) was 20x this bound (2.6 s).
    """
    sample = completion_tokens * weight_bytes / (card.bandwidth_gb_s * 1e9)
    tokens = sequences * (prompt_tokens + completion_tokens)
    update = 5 * 2 * parameters * tokens / (card.tflops * 1e12)
    return sample, update
