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

import functools
import importlib.metadata
import importlib.util
import inspect
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from grit_lite.presets import TrainError

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


def _base(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (the one that generates and compiles)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _first_line(error: BaseException) -> str:
    """``Type: the error's first line``, cut at 160 characters: what a one-line report shows."""
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:160]}"


def _checkpointing(model: Any) -> bool:
    flag = getattr(model, "is_activation_checkpointing", None)  # transformers >= 5.23's name
    return bool(model.is_gradient_checkpointing if flag is None else flag)


NOT_COMPILE_ERRORS = ("probability tensor contains",)  # torch.multinomial on inf/nan: fp16


def is_compile_error(error: BaseException) -> bool:
    """Whether a failure of compiled sampling may be the compiler's (Inductor, Triton, a
    CUDA-graph capture): anything but out of memory (eager needs as much) and a sampling of
    non-finite probabilities (the weights' doing, e.g. fp16 overflow, not the compiler's)."""
    if isinstance(error, torch.OutOfMemoryError):
        return False
    return not any(text in str(error) for text in NOT_COMPILE_ERRORS)


class _LimitHits(logging.Handler):
    """Counts dynamo's "hit config.recompile_limit" warnings: past the limit it runs the
    frame eagerly and says so only in the log."""

    count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "hit config." in str(record.msg):
            _LimitHits.count += 1


logging.getLogger("torch._dynamo.convert_frame").addHandler(_LimitHits(logging.WARNING))


class CompileWatch:
    """Says whether a ``generate`` call really decoded through the compiled graph: the model
    asked for its compiled call, no CUDA graph was skipped (inductor counts the skips, e.g.
    for a CPU tensor in the graph), and dynamo did not hit its recompile limit."""

    def __init__(self, model: Any) -> None:
        base = _base(model)
        get = inspect.unwrap(base.get_compiled_call)  # not an earlier trainer's counter

        @functools.wraps(get)
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return get(*args, **kwargs)

        base.get_compiled_call = counted
        self.start()

    def start(self) -> None:
        self.calls = 0
        self.limits = _LimitHits.count
        self.skips = torch._dynamo.utils.counters["inductor"]["cudagraph_skips"]

    def compiled(self) -> bool:
        skipped = torch._dynamo.utils.counters["inductor"]["cudagraph_skips"] > self.skips
        return self.calls > 0 and not skipped and _LimitHits.count == self.limits


def release_fast_path(trainer: Any) -> None:
    """Leave eager decoding as an eager run has it: compilation off, no static KV cache (eager
    attention over a cache sized for the longest prompt is slower), the kept cache, the
    compiled call and the CUDA-graph pool freed."""
    config = trainer.generation_config
    config.disable_compile = True
    config.cache_implementation = None
    config.max_cache_len = None
    for name in ("cache_implementation", "max_cache_len"):
        (getattr(trainer, "generation_kwargs", None) or {}).pop(name, None)
    base = _base(trainer.model)
    for name in ("_prepare_static_cache", "_compiled_call", "_last_compile_config"):
        vars(base).pop(name, None)  # instance overrides: the class's own method is back
    torch._dynamo.reset()
    if torch.cuda.is_available():
        from torch._inductor import cudagraph_trees

        cudagraph_trees.reset_cudagraph_trees()
        torch.cuda.empty_cache()


def eager_fallback(trainer: Any, say: Any = print) -> None:
    """Make sampling survive its fast path: a compile error falls back to eager decoding.

    Inductor, Triton and CUDA graphs fail in many ways on a card or driver we never tried
    (an old T4 driver, a new torch), always at the first compiled call and with a traceback
    that would end the run with no checkpoint. Here such a failure prints one line, releases
    the fast path (:func:`release_fast_path`) and samples the same prompts again eagerly; the
    run goes on as it was. TRL switches activation checkpointing off to sample and back on
    after, with no ``finally``: a failed call would leave it off for the rest of the run
    (7-25 GB more on the 3B), so it is restored here. Out of memory is not retried, and an
    error that eager decoding hits too ends the run in one line. Each step logs
    ``sampling/compiled`` (1 or 0) to ``metrics.jsonl``: which path really ran.
    """
    original = trainer._generate
    watch = CompileWatch(trainer.model)

    def restore(checkpointing: bool) -> None:
        model = trainer.accelerator.unwrap_model(trainer.model)
        if checkpointing and not _checkpointing(model):
            model.gradient_checkpointing_enable(trainer.args.gradient_checkpointing_kwargs)

    def generate(prompts: Any) -> Any:
        config = getattr(trainer, "generation_config", None)  # vLLM samples without one
        checkpointing = _checkpointing(trainer.accelerator.unwrap_model(trainer.model))
        watch.start()
        try:
            out = original(prompts)
        except Exception as error:  # inductor, Triton and CUDA raise many types
            restore(checkpointing)
            if config is None or config.disable_compile or not is_compile_error(error):
                raise  # eager decoding failed, or it is not the compiler's: not ours to hide
            say(f"compiled decoding failed ({_first_line(error)}); "
                "continuing with eager decoding")  # fmt: skip
            release_fast_path(trainer)
            watch.start()
            try:
                out = original(prompts)
            except Exception as again:
                restore(checkpointing)
                if isinstance(again, torch.OutOfMemoryError):
                    raise  # the run's own one line: grit_lite.runs.OutOfMemory
                raise SamplingError(f"sampling failed eagerly too ({_first_line(again)})") from None
        trainer._metrics["train"]["sampling/compiled"].append(float(watch.compiled()))
        return out

    trainer._generate = generate


class SamplingError(TrainError):
    """Sampling failed on the eager path as well: the run stops with this one line."""


def keep_one_static_cache(model: Any) -> dict[str, Any]:
    """Give every ``generate`` call the same static KV cache, reset, instead of a new one.

    transformers builds a fresh ``StaticCache`` per call (``_prepare_static_cache``). The
    compiled graph does not mind, but CUDA graphs read their inputs at fixed addresses: a
    new cache means a new recording every step, and torch drops graphs that re-record too
    often. The cache is rebuilt only when its shape changes (another batch size or length).
    Returns the holder of the current cache (tests read its storage).
    """
    base = _base(model)
    build = inspect.unwrap(base._prepare_static_cache)  # a second trainer: the original
    kept: dict[str, Any] = {}

    @functools.wraps(build)
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
    base = _base(model)
    register = inspect.unwrap(base.enable_input_require_grads)

    @functools.wraps(register)
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


QWEN_3B_KV_BYTES = 36 * 2 * 2 * 128 * 2  # per token: 36 layers, K and V, 2 KV heads of 128, bf16
VLLM_OVERHEAD_GIB = 3.0  # vLLM's activations, CUDA graphs and sampler beside weights and cache


def vllm_colocate_settings(preset: Any, card_gib: float | None = None) -> dict[str, Any]:
    """vLLM's share of the card and its longest sequence, sized for ``preset`` (the 3B).

    TRL's defaults give colocated vLLM 0.3 of the card and the model's full 128k context;
    beside a policy in training that is 24 GB of an H100 held for a KV cache the run never
    fills. vLLM needs the bf16 weights (7.5 GB), the KV cache of one step's sequences at the
    preset's length, and some room of its own."""
    from grit_lite.runs import QWEN_3B_PARAMETERS

    if card_gib is None:  # without a GPU (a config built on a laptop): an 80 GB card's
        on_gpu = torch.cuda.is_available()
        card_gib = torch.cuda.get_device_properties(0).total_memory / 2**30 if on_gpu else 80.0
    length = preset.max_prompt_length + preset.max_completion_length
    cache = preset.completions_per_step * length * QWEN_3B_KV_BYTES
    need_gib = (QWEN_3B_PARAMETERS * 2 + cache) / 2**30 + VLLM_OVERHEAD_GIB
    share = min(0.9, -(-need_gib / card_gib * 20 // 1) / 20)  # up to the next 0.05
    return {"vllm_gpu_memory_utilization": share, "vllm_max_model_length": length}


def vllm_colocate_problem(
    preset: Any, world_size: int | None = None, card_gib: float | None = None
) -> str | None:
    """Why colocated vLLM cannot run beside ``preset``, or None. A full fine-tune of the 3B
    peaks at 74.5 GiB on one 80 GB card by itself (docs/benchmarks.md): nothing is left for
    a second copy of the weights and a KV cache. On a small card (a T4) vLLM's own share
    would leave the policy less than half of it."""
    import os

    world_size = world_size or int(os.environ.get("WORLD_SIZE", "1"))
    if preset.vllm != "colocate":
        return None
    if not preset.lora and world_size == 1:
        return ("--vllm colocate does not fit beside a one-GPU full fine-tune (it peaks at "
                "74.5 GiB of 80 alone): add --lora, shard it over GPUs with accelerate launch "
                "and a ZeRO config, or run --vllm server on a second GPU")  # fmt: skip
    share = vllm_colocate_settings(preset, card_gib)["vllm_gpu_memory_utilization"]
    if share > 0.5:
        return (f"--vllm colocate would take {share:.0%} of this card for vLLM alone, too "
                "little is left to train: sample without vLLM, or --vllm server on a second GPU")
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
