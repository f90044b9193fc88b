"""The GPU path's ways back, checked on the CPU with a mocked card: a compile error costs a
line, not the run; one static cache for the run; the fp16 preset keeps the vision tower in
fp32; LoRA's adapter lists do not alias."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from grit_lite import gpu, report, tiny, train
from tests.test_gpu import _preset, _prompts


def _pretend_gpu(model, fail_on_call: int | None = None) -> list[int]:
    """Make ``generate`` take its compiled path on the CPU, as it does on a GPU. The
    "compiled" call is the eager one, except that it raises on generate call ``fail_on_call``
    (1-based), like an inductor or CUDA-graph failure. Returns the list of calls made."""
    calls: list[int] = []
    model._valid_auto_compile_criteria = lambda kwargs, config: not config.disable_compile

    def get_compiled_call(config):
        calls.append(len(calls) + 1)
        if len(calls) == fail_on_call:
            def broken(*args, **kwargs):
                raise RuntimeError("injected: triton failed to compile the decoder\nmore text")

            return broken
        return model.__call__

    model.get_compiled_call = get_compiled_call
    return calls


def _small():
    return tiny.build_tiny(seed=3, hidden=64, layers=2, vision_hidden=32)


def test_a_compile_failure_prints_one_line_and_the_run_goes_on(tmp_path, capsys):
    model, processor = _small()
    calls = _pretend_gpu(model, fail_on_call=2)
    preset = _preset(fast_sampling=True, max_steps=3, save_steps=100)
    trainer = train.train(preset, tmp_path, model=model, processor=processor, n_rollouts=0,
                          progress=False)  # fmt: skip
    assert trainer.state.global_step == 3 and (tmp_path / "final").is_dir()
    lines = [line for line in capsys.readouterr().out.splitlines() if "compiled decoding" in line]
    assert lines == [
        "compiled decoding failed (RuntimeError: injected: triton failed to compile the "
        "decoder); continuing with eager decoding"
    ]
    assert calls == [1, 2]  # compiled for step 1, failed at step 2, never tried again
    used = [row["sampling/compiled"] for row in report.read_metrics(tmp_path / "metrics.jsonl")]
    assert used == [1.0, 0.0, 0.0]


def test_an_eager_failure_is_not_hidden(tmp_path):
    """Only the fast path falls back: a failure of eager decoding itself still stops the run."""
    model, processor = tiny.load_tiny(tiny.SHIPPED)
    trainer = type("Trainer", (), {})()
    trainer.model = model
    trainer.accelerator = type("Accelerator", (), {"unwrap_model": lambda self, m: m})()
    trainer.generation_config = type("Config", (), {"disable_compile": True})()
    trainer._metrics = {"train": {}}
    trainer._generate = lambda prompts: (_ for _ in ()).throw(ValueError("bad prompt"))
    gpu.eager_fallback(trainer, say=pytest.fail)
    with pytest.raises(ValueError, match="bad prompt"):
        trainer._generate(["x"])


def test_one_static_cache_serves_every_sampling_call():
    from transformers import GenerationConfig

    model, processor = tiny.load_tiny(tiny.SHIPPED)
    from grit_lite import data

    items = data.train_split()
    ids = model.generation_config
    greedy = {"max_new_tokens": 12, "do_sample": False, "pad_token_id": ids.pad_token_id,
              "eos_token_id": ids.eos_token_id}  # fmt: skip
    static = GenerationConfig(cache_implementation="static", max_cache_len=400, **greedy)
    eager = [model.generate(**_prompts(processor, b), generation_config=GenerationConfig(**greedy))
             for b in (items[:2], items[10:12])]  # fmt: skip
    kept = gpu.keep_one_static_cache(model)
    storage, caches = [], []
    for batch, expected in zip((items[:2], items[10:12]), eager, strict=True):
        out = model.generate(**_prompts(processor, batch), generation_config=static)
        assert torch.equal(out, expected)  # the same completions as eager decoding
        caches.append(kept["cache"])
        storage.append([layer.keys.data_ptr() for layer in kept["cache"].layers])
    assert caches[0] is caches[1] and storage[0] == storage[1]


def test_a_new_batch_shape_gets_a_new_cache():
    model, _ = tiny.load_tiny(tiny.SHIPPED)
    built: list[int] = []
    model._prepare_static_cache = lambda **kw: built.append(kw["batch_size"]) or object()
    kept = gpu.keep_one_static_cache(model)
    with pytest.raises(AttributeError):  # a stand-in cache has no reset(): proves reuse
        for size in (4, 4):
            model._prepare_static_cache(batch_size=size, max_cache_len=9, model_kwargs={})
    assert built == [4] and kept["key"] == (("batch_size", 4), ("max_cache_len", 9))
    model._prepare_static_cache(batch_size=2, max_cache_len=9, model_kwargs={})
    assert built == [4, 2]


def test_the_colab_preset_runs_in_fp16_with_its_vision_tower_in_fp32(tmp_path):
    """The colab preset's real GRPOConfig (fp16 autocast, loss scaling, LoRA on an fp16
    base), on the tiny model: three steps with finite losses; the vision tower stays fp32."""
    colab = train.PRESETS["qwen2.5-vl-3b-colab"]
    preset = dataclasses.replace(
        _preset(), lora=True, lora_rank=8, lora_alpha=16, bf16=False, fp16=True,
        learning_rate=colab.learning_rate, max_steps=3, save_steps=100, fast_sampling=False,
    )  # fmt: skip
    args = train.grpo_config(preset, tmp_path)
    assert args.fp16 and not args.bf16
    model, processor = _small()
    model = model.to(train.weight_dtype(preset))
    trainer = train.train(preset, tmp_path, model=model, processor=processor, n_rollouts=0,
                          progress=False)  # fmt: skip
    visual = trainer.model.get_base_model().model.visual
    assert {p.dtype for p in visual.parameters()} == {torch.float32}
    language = trainer.model.get_base_model().model.language_model
    base = {p.dtype for n, p in language.named_parameters() if "lora_" not in n}
    assert base == {torch.float16}  # the language model stays fp16 (its adapters are fp32)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    rows = [row for row in map(json.loads, lines) if "loss" in row]
    assert len(rows) == 3 and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)


def test_vision_in_fp32_turns_autocast_off_inside_the_tower():
    model, processor = tiny.load_tiny(tiny.SHIPPED)
    model = model.to(torch.float16)
    seen = []
    visual = gpu.vision_in_fp32(model)
    visual.blocks[0].register_forward_hook(
        lambda m, i, o: seen.append((torch.is_autocast_enabled("cpu"), o.dtype))
    )
    from grit_lite import data

    enc = _prompts(processor, data.train_split()[:1])
    with torch.autocast("cpu", dtype=torch.float16):
        model.model.get_image_features(enc["pixel_values"], enc["image_grid_thw"])
    assert seen == [(False, torch.float32)]
    assert gpu.vision_in_fp32(model) is visual  # a second call changes nothing


def test_each_lora_layer_gets_its_own_adapter_list():
    """PEFT gives every tuner layer one shared list; TRL's first step replaces them with
    separate ones, which fails the compiled graph's aliasing guard and compiles again."""
    from peft import get_peft_model
    from peft.tuners.tuners_utils import BaseTunerLayer

    model, processor = _small()
    preset = dataclasses.replace(train.PRESETS["tiny-cpu"], lora=True)
    model = get_peft_model(model, train.lora_config(preset))  # what GRPOTrainer does with it
    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    assert len({id(m._active_adapter) for m in layers}) == 1  # PEFT's layout: one list
    assert gpu.own_adapter_lists(model) == len(layers)
    assert len({id(m._active_adapter) for m in layers}) == len(layers)
    assert all(m.active_adapters == ["default"] for m in layers)


# -- version floors ------------------------------------------------------------------------------


def test_the_floors_are_the_ones_pyproject_declares():
    import re

    import tomllib

    from tests.test_environment import ROOT

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = dict(re.fullmatch(r"([\w-]+)>=([\d.]+)", d).groups() for d in declared)
    assert {name: floors[name] for name in gpu.FLOORS} == gpu.FLOORS


def test_an_old_library_is_named_with_the_pip_line_that_fixes_it():
    tested = {"torch": "2.14.1+cu130", "torchvision": "0.29.1", "transformers": "5.24.0",
              "trl": "1.16.0", "peft": "0.21.2", "accelerate": "1.15.0",
              "datasets": "5.2.0"}  # fmt: skip
    assert gpu.version_problem(tested) is None
    colab = {**tested, "transformers": "5.22.2", "trl": "0.29.1", "peft": None}
    problem = gpu.version_problem(colab)
    assert problem.startswith("too old for this course: transformers 5.22.2 (needs >= 5.23), ")
    assert "trl 0.29.1 (needs >= 1.0)" in problem
    assert "peft not installed (needs >= 0.20)" in problem
    assert problem.endswith('pip install -U "transformers>=5.23" "trl>=1.0" "peft>=0.20"')
    assert gpu.version_problem({**tested, "transformers": "5.23.0.dev0"}) is None  # base version


def test_the_command_line_stops_on_an_old_library_before_anything_loads(monkeypatch, tmp_path):
    real = gpu.importlib.metadata.version
    monkeypatch.setattr(gpu.importlib.metadata, "version",
                        lambda name: "0.29.1" if name == "trl" else real(name))  # fmt: skip
    monkeypatch.setattr(train, "load_model", lambda *a, **k: pytest.fail("weights were built"))
    with pytest.raises(SystemExit, match=r'trl 0\.29\.1 \(needs >= 1\.0\).*"trl>=1\.0"'):
        train.main(["--preset", "tiny-cpu", "--output", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


# -- one compile for the run ---------------------------------------------------------------------


class _Frames:
    """A callback that reads dynamo's count of compiled frames after every step."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        self.after: list[int] = []
        after = self.after

        class Count(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                after.append(torch._dynamo.utils.counters["frames"]["ok"])

        self.callback = Count()


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_sampling_compiles_once_for_the_run(monkeypatch, tmp_path, lora):
    """Compilation forced on the CPU (transformers compiles on GPUs only), fast sampling on,
    four TRL steps: every frame is compiled in step 1, nothing new after it. Without
    :func:`grit_lite.gpu.own_adapter_lists`, the LoRA layout compiled again at step 2."""
    from transformers import CompileConfig

    everywhere = CompileConfig(mode="default", fullgraph=False)
    everywhere._compile_all_devices = True
    forced = gpu.compile_decoding
    monkeypatch.setattr(gpu, "compile_decoding", lambda trainer: forced(trainer, everywhere))
    model, processor = _small()
    preset = _preset(fast_sampling=True, max_steps=4, save_steps=100, lora=lora, lora_rank=4,
                     lora_alpha=8, max_completion_length=8)  # fmt: skip
    frames = _Frames()
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    train.train(preset, tmp_path, model=model, processor=processor, n_rollouts=0,
                callbacks=[frames.callback], progress=False)  # fmt: skip
    rows = report.read_metrics(tmp_path / "metrics.jsonl")
    assert [r["sampling/compiled"] for r in rows] == [1.0] * 4  # no fallback either
    assert frames.after[0] > 0 and frames.after == [frames.after[0]] * 4, frames.after


# -- what the fallback leaves behind, and what it does not retry ---------------------------------


def _compiled(model, compiled_call):
    """``generate`` takes its compiled path on the CPU, decoding with ``compiled_call``."""
    model._valid_auto_compile_criteria = lambda kwargs, config: (
        not config.disable_compile and getattr(kwargs.get("cache"), "is_compileable", False))
    model.get_compiled_call = lambda config: compiled_call


def _fast(**changes):
    return _preset(**{"fast_sampling": True, "max_steps": 2, "save_steps": 100, **changes})


def test_after_a_fallback_eager_decoding_runs_without_the_fast_path(tmp_path):
    model, processor = _small()
    failed = []

    def broken(*args, **kwargs):
        failed.append(1)
        raise RuntimeError("injected: cudagraph capture failed")

    _compiled(model, broken)
    trainer = train.train(_fast(gradient_checkpointing=True), tmp_path, model=model,
                          processor=processor, n_rollouts=0, progress=False)  # fmt: skip
    config = trainer.generation_config
    assert failed == [1] and config.disable_compile and config.cache_implementation is None
    assert config.max_cache_len is None  # eager decoding with a dynamic cache, as eager runs
    assert "_prepare_static_cache" not in vars(model) and "_compiled_call" not in vars(model)
    assert gpu._checkpointing(trainer.model)  # TRL's unwrap switched it off; it is back on


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB"),
    RuntimeError("probability tensor contains either `inf`, `nan` or element < 0"),
], ids=["out-of-memory", "non-finite"])  # fmt: skip
def test_errors_that_are_not_the_compilers_are_not_retried_eagerly(tmp_path, capsys, error):
    model, processor = _small()

    def fails(*args, **kwargs):
        raise error

    _compiled(model, fails)
    expected = train.runs.OutOfMemory if isinstance(error, torch.OutOfMemoryError) else type(error)
    with pytest.raises(expected):
        train.train(_fast(), tmp_path, model=model, processor=processor, n_rollouts=0,
                    progress=False)  # fmt: skip
    assert "compiled decoding failed" not in capsys.readouterr().out


def test_an_error_that_survives_the_fallback_stops_the_run_in_one_line(monkeypatch, tmp_path):
    model, processor = _small()
    lost = RuntimeError("CUDA error: an illegal memory access was encountered\nmore lines")

    def fails(*args, **kwargs):
        raise lost

    _compiled(model, fails)
    eager = model.forward

    def forward(*args, **kwargs):  # the eager decode steps fail too: the context is lost
        if kwargs.get("input_ids") is not None and kwargs["input_ids"].shape[1] == 1:
            raise lost
        return eager(*args, **kwargs)

    model.forward = forward
    monkeypatch.setattr(train, "load_model", lambda preset, *a, **k: (model, processor))
    monkeypatch.setitem(train.PRESETS, "tiny-cpu", _fast())
    with pytest.raises(SystemExit) as stopped:
        train.main(["--preset", "tiny-cpu", "--output", str(tmp_path / "run"), "--rollouts", "0",
                    "--no-heldout"])  # fmt: skip
    message = str(stopped.value.code)
    assert message == ("error: sampling failed eagerly too (RuntimeError: CUDA error: an "
                       "illegal memory access was encountered)")  # fmt: skip


def test_sampling_compiled_is_0_where_the_graph_did_not_really_run(tmp_path):
    """A CUDA graph skipped (inductor counts it) or dynamo's recompile limit hit (it then runs
    the frame eagerly, saying so only in its log) is not compiled decoding."""
    import logging

    model, processor = _small()
    generated, seen = [], set()
    original = model.generate

    def generate(*args, **kwargs):  # counts the steps' sampling calls
        generated.append(1)
        return original(*args, **kwargs)

    def compiled(*args, **kwargs):
        step = len(generated)
        if step not in seen:
            seen.add(step)
            if step == 1:  # inductor skips the CUDA graph
                torch._dynamo.utils.counters["inductor"]["cudagraph_skips"] += 1
            if step == 2:  # dynamo hits its recompile limit
                logging.getLogger("torch._dynamo.convert_frame").warning(
                    "torch._dynamo hit config.%s (%s)", "recompile_limit", 8)
        return model.__call__(*args, **kwargs)

    model.generate = generate
    _compiled(model, compiled)
    train.train(_fast(max_steps=3, max_completion_length=8), tmp_path, model=model,
                processor=processor, n_rollouts=0, progress=False)  # fmt: skip
    used = [row["sampling/compiled"] for row in report.read_metrics(tmp_path / "metrics.jsonl")]
    assert used == [0.0, 0.0, 1.0]
