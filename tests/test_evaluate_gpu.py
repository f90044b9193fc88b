"""``evaluate.load_model`` on a (pretend) GPU: where the weights go, in which precision, with
which image cap; LoRA adapters merged into their base. No GPU and no network needed: the card
is a fake and ``from_pretrained`` returns a small tiny model, recording how it was asked."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

from grit_lite import evaluate, presets, tiny
from grit_lite.boxes import QWEN_MIN_PIXELS
from grit_lite.presets import GRIT_MAX_PIXELS, TrainError

CAP = {"size": {"shortest_edge": QWEN_MIN_PIXELS, "longest_edge": GRIT_MAX_PIXELS}}
QWEN_3B = "Qwen/Qwen2.5-VL-3B-Instruct"


class A100:
    name, total_memory, major, minor = "NVIDIA A100-SXM4-80GB", 79 * 2**30, 8, 0


class T4:
    name, total_memory, major, minor = "Tesla T4", 15 * 2**30, 7, 5


def _card(monkeypatch, card: type | None) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: card is not None)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: card())


def _vlm_folder(path: Path) -> Path:
    """A folder that reads as a real VLM (Qwen's vocabulary), not as the tiny model."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"text_config": {"vocab_size": 151936}}))
    return path


@pytest.fixture(scope="module")
def small():
    return tiny.build_tiny(seed=3, hidden=64, layers=2, vision_hidden=32)


@pytest.fixture
def loads(monkeypatch, small):
    """Every ``from_pretrained`` call as (path, kwargs); each returns a copy of ``small`` in
    the dtype asked for, which refuses to be moved afterwards (it must be loaded in place)."""
    calls: dict[str, list] = {"model": [], "processor": []}

    def moved(*args, **kwargs):
        pytest.fail("the model was moved after loading instead of loaded onto its device")

    def model(path, **kwargs):
        calls["model"].append((str(path), kwargs))
        loaded = copy.deepcopy(small[0]).to(kwargs.get("dtype", torch.float32))
        loaded.to = loaded.cuda = moved
        return loaded

    def processor(path, **kwargs):
        calls["processor"].append((str(path), kwargs))
        return small[1]

    monkeypatch.setattr(Qwen2_5_VLForConditionalGeneration, "from_pretrained", model)
    monkeypatch.setattr(AutoProcessor, "from_pretrained", processor)
    return calls


def _dtypes(model) -> tuple[torch.dtype, torch.dtype]:
    """(language model's dtype, vision tower's dtype)."""
    language = next(model.model.language_model.parameters()).dtype
    return language, next(model.model.visual.parameters()).dtype


@pytest.mark.parametrize("hub", [False, True])
def test_a_card_with_native_bf16_loads_bf16_onto_the_card_with_grits_cap(
    monkeypatch, tmp_path, loads, hub
):
    _card(monkeypatch, A100)
    monkeypatch.setattr(presets, "_cached", lambda name: True)
    name = QWEN_3B if hub else str(_vlm_folder(tmp_path / "qwen"))
    model, _ = evaluate.load_model(name)
    assert loads["model"] == [(name, {"dtype": torch.bfloat16, "device_map": "cuda"})]
    assert loads["processor"] == [(name, CAP)]
    assert _dtypes(model) == (torch.bfloat16, torch.bfloat16) and not model.training


def test_a_t4_loads_fp16_with_the_vision_tower_in_fp32(monkeypatch, tmp_path, loads):
    _card(monkeypatch, T4)
    folder = str(_vlm_folder(tmp_path / "qwen"))
    model, _ = evaluate.load_model(folder)
    assert loads["model"] == [(folder, {"dtype": torch.float16, "device_map": "cuda"})]
    assert loads["processor"] == [(folder, CAP)]
    assert _dtypes(model) == (torch.float16, torch.float32) and model.model.visual.in_fp32


def test_without_a_gpu_the_model_loads_in_fp32_on_the_cpu(monkeypatch, tmp_path, loads):
    _card(monkeypatch, None)
    folder = str(_vlm_folder(tmp_path / "qwen"))
    model, _ = evaluate.load_model(folder)
    assert loads["model"] == [(folder, {"dtype": torch.float32})]
    assert loads["processor"] == [(folder, CAP)]
    assert _dtypes(model) == (torch.float32, torch.float32)


def test_the_tiny_model_keeps_its_cpu_path_on_a_gpu_machine(monkeypatch):
    _card(monkeypatch, A100)
    seen, real = [], tiny.load_tiny
    monkeypatch.setattr(tiny, "load_tiny", lambda folder: seen.append(folder) or real(folder))
    model, processor = evaluate.load_model("tiny")
    assert seen == [str(tiny.SHIPPED)]
    assert model.device.type == "cpu" and _dtypes(model) == (torch.float32, torch.float32)
    shipped = AutoProcessor.from_pretrained(tiny.SHIPPED).image_processor.size
    assert processor.image_processor.size == shipped  # its own 112 px view, not GRIT's cap
    assert shipped.longest_edge != GRIT_MAX_PIXELS


@pytest.mark.parametrize(
    ("card", "run", "dtype", "size"),
    [
        (A100, {"bf16": False, "fp16": True, "max_pixels": 128 * 28 * 28}, torch.float16,
         {"size": {"shortest_edge": QWEN_MIN_PIXELS, "longest_edge": 128 * 28 * 28}}),
        (T4, {"bf16": True, "fp16": False, "max_pixels": None}, torch.bfloat16, {}),
    ],
)  # fmt: skip
def test_a_runs_own_precision_and_image_cap_win(
    monkeypatch, tmp_path, loads, card, run, dtype, size
):
    _card(monkeypatch, card)
    final = str(_vlm_folder(tmp_path / "run" / "final"))
    (tmp_path / "run" / "preset.json").write_text(json.dumps(run))
    evaluate.load_model(final)
    assert loads["model"] == [(final, {"dtype": dtype, "device_map": "cuda"})]
    assert loads["processor"] == [(final, size)]


def _lora_run(folder: Path, model, base: str) -> torch.Tensor:
    """LoRA adapters on ``model`` saved in ``folder`` as a run's ``final``; returns one merged
    weight, what loading them must give."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=4, target_modules=r"model\.language_model.*\.(q_proj|v_proj)",
                        init_lora_weights=False)  # fmt: skip
    wrapped = get_peft_model(copy.deepcopy(model), config)
    wrapped.save_pretrained(folder)
    saved = folder / "adapter_config.json"
    saved.write_text(json.dumps(json.loads(saved.read_text()) | {"base_model_name_or_path": base}))
    return wrapped.merge_and_unload().model.language_model.layers[0].self_attn.q_proj.weight


def test_lora_adapters_load_on_their_base_and_are_merged(monkeypatch, tmp_path, loads, small):
    from peft import PeftModel

    _card(monkeypatch, None)
    base = str(_vlm_folder(tmp_path / "qwen"))
    merged = _lora_run(tmp_path / "run" / "final", small[0], base)
    model, _ = evaluate.load_model(str(tmp_path / "run" / "final"))
    assert [path for path, _ in loads["model"]] == [base] and not isinstance(model, PeftModel)
    assert not any("lora" in name for name, _ in model.named_parameters())
    weight = model.model.language_model.layers[0].self_attn.q_proj.weight
    original = small[0].model.language_model.layers[0].self_attn.q_proj.weight
    assert torch.allclose(weight, merged) and not torch.allclose(weight, original)


def test_lora_without_its_base_offline_says_in_one_line_what_to_do(
    monkeypatch, tmp_path, loads, small, capsys
):
    _card(monkeypatch, None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(presets, "_cached", lambda name: False)
    final = tmp_path / "run" / "final"
    _lora_run(final, small[0], QWEN_3B)
    with pytest.raises(TrainError) as error:
        evaluate.load_model(str(final))
    assert "\n" not in str(error.value) and QWEN_3B in str(error.value)
    assert "--base /path/to/Qwen2.5-VL-3B-Instruct" in str(error.value)
    with pytest.raises(SystemExit, match=r"^error: the LoRA adapters in .*--base") as stop:
        evaluate.main(["--model", str(final), "-n", "1"])
    assert "\n" not in str(stop.value) and loads["model"] == []
    base = str(_vlm_folder(tmp_path / "qwen"))
    evaluate.load_model(str(final), base=base)  # the way out the message names
    assert [path for path, _ in loads["model"]] == [base]


def test_a_folder_that_will_not_load_is_one_train_error(monkeypatch, tmp_path):
    _card(monkeypatch, A100)

    def broken(path, **kwargs):
        raise OSError("no file named model.safetensors")

    monkeypatch.setattr(Qwen2_5_VLForConditionalGeneration, "from_pretrained", broken)
    folder = str(_vlm_folder(tmp_path / "qwen"))
    with pytest.raises(TrainError, match=r"^cannot load the model .*qwen: no file named"):
        evaluate.load_model(folder)
