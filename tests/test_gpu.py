"""The GPU path's fixes, checked on the CPU: hooks, compiled decoding, fp32 masters, vLLM."""

from __future__ import annotations

import copy
import dataclasses
import time

import pytest
import torch

from grit_lite import data, gpu, tiny, train


def _preset(**changes):
    small = {"max_steps": 3, "save_steps": 1, "num_generations": 2, "completions_per_step": 4,
             "max_completion_length": 16, "learning_rate": 1e-3}  # fmt: skip
    return dataclasses.replace(train.PRESETS["tiny-cpu"], **{**small, **changes})


class _Record:
    """A callback that records a value of the model after every optimisation step."""

    def __init__(self, read):
        from transformers import TrainerCallback

        self.values = []
        values = self.values

        class Record(TrainerCallback):
            def on_step_end(self, args, state, control, model=None, **kwargs):
                values.append(read(model))

        self.callback = Record()


def test_gradient_checkpointing_keeps_one_input_hook(tmp_path):
    """transformers adds an embeddings hook each time TRL re-enables checkpointing."""
    model, processor = tiny.build_tiny(seed=3, hidden=64, layers=2, vision_hidden=32)
    hooks = _Record(gpu.input_hooks)
    preset = _preset(gradient_checkpointing=True, max_steps=4, save_steps=100)
    train.train(preset, tmp_path, model=model, processor=processor, n_rollouts=0,
                callbacks=[hooks.callback], progress=False)  # fmt: skip
    assert hooks.values == [1, 1, 1, 1]  # was 3, 5, 7, 9: two more every step


def _prompts(processor, items):
    from grit_lite.format import build_prompt

    chats = [tiny._user(build_prompt(r.question)) for r, _ in items]
    texts = [processor.apply_chat_template(c, add_generation_prompt=True) for c in chats]
    processor.tokenizer.padding_side = "left"
    try:
        return processor(text=texts, images=[im for _, im in items], return_tensors="pt",
                         padding=True)  # fmt: skip
    finally:
        processor.tokenizer.padding_side = "right"


def test_compiled_decoding_gives_the_eager_greedy_completions(tmp_path):
    """The trainer's generation config, compiled, decodes exactly what eager decoding does,
    and a second batch with a longer prompt reuses the compiled graph (one static cache)."""
    from transformers import CompileConfig, GenerationConfig

    model, processor = tiny.load_tiny(tiny.SHIPPED)
    preset = _preset(fast_sampling=True, max_completion_length=48)
    args = train.grpo_config(preset, tmp_path)
    assert args.cache_implementation == "static"
    assert args.generation_kwargs == {"max_cache_len": preset.max_prompt_length + 48}
    trainer = type("Trainer", (), {})()  # what compile_decoding reads of a GRPOTrainer
    trainer.generation_config = GenerationConfig(
        cache_implementation="static", disable_compile=True, **args.generation_kwargs
    )
    everywhere = CompileConfig(mode="default")
    everywhere._compile_all_devices = True  # transformers compiles on GPUs only by default
    gpu.compile_decoding(trainer, everywhere)
    assert trainer.generation_config.disable_compile is False

    ids = model.generation_config
    greedy = {"max_new_tokens": 48, "do_sample": False, "pad_token_id": ids.pad_token_id,
              "eos_token_id": ids.eos_token_id}  # fmt: skip
    compiled = copy.deepcopy(trainer.generation_config)
    compiled.update(**greedy)
    items = data.train_split()
    torch._dynamo.reset()
    for batch in (items[:4], items[10:14]):  # two prompt lengths (tallyqa questions are longer)
        enc = _prompts(processor, batch)
        eager = model.generate(**enc, generation_config=GenerationConfig(**greedy))
        frames = torch._dynamo.utils.counters["frames"]["ok"]
        fast = model.generate(**enc, generation_config=compiled)
        assert torch.equal(fast, eager)
    assert torch._dynamo.utils.counters["frames"]["ok"] == frames  # no recompile
    assert frames > 0


def test_master_weights_update_as_fp32_adamw_does():
    """bf16 weights + fp32 masters: the masters follow fp32 AdamW exactly, the weights are
    the masters rounded, and GRIT's tiny lr moves them (it moves almost no bf16 weight)."""
    torch.manual_seed(0)
    start = (torch.randn(3, 2000) * 0.02).to(torch.bfloat16)
    fp32 = [torch.nn.Parameter(row.float()) for row in start]
    bf16 = [torch.nn.Parameter(row.clone()) for row in start]
    plain = torch.optim.AdamW([{"params": fp32, "weight_decay": 0.1}], lr=2e-6)
    chunked = gpu.MasterWeightAdamW([{"params": bf16, "weight_decay": 0.1}], lr=2e-6,
                                    chunk_bytes=8000)  # fmt: skip
    assert [len(c) for c in chunked.chunks] == [1, 1, 1]  # a row is 8000 bytes in fp32
    for _ in range(5):
        for a, b in zip(fp32, bf16, strict=True):
            grad = torch.randn_like(a).to(torch.bfloat16)
            a.grad, b.grad = grad.float(), grad
        plain.step()
        chunked.step()
    for a, b, master, first in zip(fp32, bf16, chunked.masters, start, strict=True):
        assert master.dtype == torch.float32 and b.dtype == torch.bfloat16
        assert torch.equal(master, a.detach())  # exactly fp32 AdamW
        assert torch.equal(b.detach(), master.to(torch.bfloat16))  # the weight: master rounded
        assert (master != first.float()).float().mean() > 0.99  # every master moved
        assert (b.detach() != first).float().mean() < 0.2  # few bf16 weights did yet


def test_master_weights_survive_a_state_dict_round_trip():
    weight = torch.nn.Parameter(torch.randn(100).to(torch.bfloat16))
    optimizer = gpu.MasterWeightAdamW([weight], lr=1e-3)
    weight.grad = torch.randn_like(weight)
    optimizer.step()
    saved = copy.deepcopy(optimizer.state_dict())
    fresh = gpu.MasterWeightAdamW([weight], lr=1e-3)
    assert not torch.equal(fresh.masters[0], optimizer.masters[0])  # rounding lost
    fresh.load_state_dict(saved)
    assert torch.equal(fresh.masters[0], optimizer.masters[0])
    assert fresh.state_dict()["state"][0]["step"] == 1


def _bf16_run(output, stop_at=None, resume=False):
    from tests.test_train import _StopAt

    model, processor = tiny.load_tiny(tiny.SHIPPED)
    model = model.to(torch.bfloat16)
    callbacks = [_StopAt(stop_at).callback] if stop_at else []
    return train.train(_preset(bf16=True, learning_rate=1e-4), output, resume=resume,
                       model=model, processor=processor, n_rollouts=0, callbacks=callbacks,
                       progress=False)  # fmt: skip


def test_a_bf16_full_fine_tune_steps_fp32_masters_and_resumes(tmp_path):
    """The full fine-tune's bf16 path end to end on the CPU: TRL uses the master optimiser,
    the weights move, and a run resumed at step 2 ends on the same masters and weights."""
    start = [p.detach().clone() for p in tiny.load_tiny(tiny.SHIPPED)[0].parameters()]
    straight = _bf16_run(tmp_path / "straight")
    optimizer = straight.optimizer.optimizer  # accelerate wraps it
    assert isinstance(optimizer, gpu.MasterWeightAdamW)
    assert {p.dtype for p in straight.model.parameters()} == {torch.bfloat16}
    pairs = zip(straight.model.parameters(), start, strict=True)
    assert any(not torch.equal(a, b.to(torch.bfloat16)) for a, b in pairs)
    _bf16_run(tmp_path / "resumed", stop_at=2)
    resumed = _bf16_run(tmp_path / "resumed", resume=True)
    for a, b in zip(optimizer.masters, resumed.optimizer.optimizer.masters, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_vllm_is_checked_before_any_weights_are_built(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(gpu.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(train, "load_model", lambda *a, **k: pytest.fail("weights were built"))
    start = time.perf_counter()
    with pytest.raises(SystemExit, match=r'pip install "vllm>=0\.22\.0,<=0\.31\.0"') as error:
        train.main(["--preset", "qwen2.5-vl-3b", "--vllm", "colocate", "--output",
                    str(tmp_path)])  # fmt: skip
    assert error.value.code != 0 and time.perf_counter() - start < 5
    assert not any(tmp_path.iterdir())  # nothing written either
    with pytest.raises(train.TrainError, match="not installed"):  # the API checks it too
        train.train(dataclasses.replace(train.PRESETS["tiny-cpu"], vllm="server"), tmp_path)
    with pytest.raises(SystemExit):
        train.main(["--preset", "tiny-cpu", "--vllm-url", "http://localhost:8000"])
    assert "--vllm-url needs --vllm server" in capsys.readouterr().err


def test_vllm_version_outside_trls_range_is_named(monkeypatch):
    monkeypatch.setattr(gpu.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(gpu.importlib.metadata, "version", lambda name: "0.11.2")
    assert "vLLM 0.11.2 is installed; TRL supports 0.22.0 to 0.31.0" in gpu.vllm_problem()
    monkeypatch.setattr(gpu.importlib.metadata, "version", lambda name: "0.25.1+cu130")
    assert gpu.vllm_problem() is None


def test_vllm_options_reach_trl(tmp_path):
    full = dataclasses.replace(train.PRESETS["qwen2.5-vl-3b"], bf16=False)
    server = dataclasses.replace(full, vllm="server", vllm_url="http://10.0.0.2:8000")
    config = train.grpo_config(server, tmp_path)
    assert config.use_vllm and config.vllm_mode == "server"
    assert config.vllm_server_base_url == "http://10.0.0.2:8000"
    assert config.vllm_importance_sampling_correction  # TRL's correction stays on
    assert config.cache_implementation is None  # vLLM samples: no static cache to compile
    colocate = train.grpo_config(dataclasses.replace(full, vllm="colocate"), tmp_path)
    assert colocate.use_vllm and colocate.vllm_mode == "colocate"
    # sized for the run, not TRL's 0.3 of the card and the model's whole context: the bf16
    # weights (7.0 GiB), 8 sequences of 1750 tokens at 36 KiB a token (0.5 GiB), 3 GiB more
    assert colocate.vllm_max_model_length == 750 + 1000
    assert colocate.vllm_gpu_memory_utilization == 0.15  # 10.5 of 80 GiB, up to the next 0.05
    t4 = gpu.vllm_colocate_settings(train.PRESETS["qwen2.5-vl-3b-colab"], card_gib=15.0)
    assert t4 == {"vllm_gpu_memory_utilization": 0.7, "vllm_max_model_length": 750 + 512}
    assert not train.grpo_config(full, tmp_path).use_vllm


def test_colab_preset_is_fp16_lora_with_capped_lengths(tmp_path):
    preset = train.PRESETS["qwen2.5-vl-3b-colab"]
    assert preset.lora and preset.fp16 and not preset.bf16
    assert train.weight_dtype(preset) == torch.float16  # the frozen base; adapters stay fp32
    assert preset.max_pixels == 256 * 28 * 28 and preset.max_completion_length <= 512
    assert (preset.num_generations, preset.completions_per_step) == (4, 8)  # GRIT's batch
    assert train.batch_split(preset, 1) == (2, 4)
    # fp16 needs a GPU in TrainingArguments, so the CPU checks the rest of its config
    config = train.grpo_config(dataclasses.replace(preset, fp16=False), tmp_path)
    assert config.cache_implementation == "static"
    assert config.generation_kwargs["max_cache_len"] == preset.max_prompt_length + 512
    assert train.weight_dtype(train.PRESETS["qwen2.5-vl-3b"]) == torch.bfloat16  # + masters
    assert train.weight_dtype(train.PRESETS["tiny-cpu"]) == torch.float32


def test_shipped_cpu_preset_decodes_as_recorded(tmp_path):
    """tiny-cpu keeps eager decoding with a dynamic cache: its recorded run stays exact."""
    config = train.grpo_config(train.PRESETS["tiny-cpu"], tmp_path)
    assert config.cache_implementation is None and config.generation_kwargs is None


def test_vllm_colocate_is_refused_where_it_cannot_fit():
    full = dataclasses.replace(train.PRESETS["qwen2.5-vl-3b"], vllm="colocate")
    assert "one-GPU full fine-tune" in gpu.vllm_colocate_problem(full, world_size=1)
    assert gpu.vllm_colocate_problem(full, world_size=8, card_gib=80.0) is None  # sharded
    lora = dataclasses.replace(train.PRESETS["qwen2.5-vl-3b-lora"], vllm="colocate")
    assert gpu.vllm_colocate_problem(lora, world_size=1, card_gib=80.0) is None
    colab = dataclasses.replace(train.PRESETS["qwen2.5-vl-3b-colab"], vllm="colocate")
    assert "70% of this card" in gpu.vllm_colocate_problem(colab, world_size=1, card_gib=15.0)


def test_the_vllm_range_is_the_one_trl_accepts():
    import inspect
    import re

    from trl import import_utils

    source = inspect.getsource(import_utils.is_vllm_available)
    low, high = re.search(r'Version\("([\d.]+)"\) <= _vllm_base_version <= Version\("([\d.]+)"\)',
                          source).groups()  # fmt: skip
    assert (low, high) == gpu.VLLM_RANGE


def test_a_gpu_run_loads_the_3b_straight_onto_its_card(monkeypatch):
    """Colab has 12.7 GB of host RAM: the 3B is placed on the GPU as it loads, not built on
    the CPU first; under DeepSpeed ZeRO-3 placement is DeepSpeed's."""
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    seen = {}
    small, processor = tiny.build_tiny(seed=3, hidden=64, layers=2, vision_hidden=32)
    monkeypatch.setattr(train.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(train, "resolve_model", lambda name: name)
    monkeypatch.setattr(Qwen2_5_VLForConditionalGeneration, "from_pretrained",
                        lambda path, **kw: seen.update(kw) or small)  # fmt: skip
    monkeypatch.setattr(AutoProcessor, "from_pretrained", lambda path, **kw: processor)
    preset = dataclasses.replace(train.PRESETS["qwen2.5-vl-3b-lora"], model="some/model")
    train.load_model(preset)
    assert seen == {"dtype": torch.bfloat16, "device_map": {"": 0}}
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert train.gpu_placement(preset) == {"": 3}  # accelerate launch: this process's GPU
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    assert train.gpu_placement(preset) is None
    assert train.gpu_placement(train.PRESETS["tiny-cpu"]) is None
