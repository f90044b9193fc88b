"""The GRPO-GR run: presets, batch shapes, offline behaviour, and resuming a run."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from grit_lite import presets, tiny, train


def test_official_preset_matches_the_paper():
    preset = train.PRESETS["qwen2.5-vl-3b"]
    assert preset.model == "Qwen/Qwen2.5-VL-3B-Instruct" and not preset.lora
    config = train.grpo_config(dataclasses.replace(preset, bf16=False), "unused")
    assert config.learning_rate == 2e-6
    assert config.lr_scheduler_type == "cosine"
    assert config.num_generations == 4 and config.beta == 0.01
    assert config.loss_type == "grpo" and config.scale_rewards == "group"
    assert config.max_completion_length == 1000 and config.num_train_epochs == 200
    assert config.use_bias_correction_kl is False
    assert config.gradient_checkpointing and config.save_steps == 50
    assert preset.bf16 and preset.max_prompt_length == 750
    assert preset.max_pixels == 256 * 28 * 28  # GRPOGRTrainer's cap on the image


def test_the_image_cap_reaches_the_processor(monkeypatch):
    """A capped preset's processor resizes as GRIT's trainer did (boxes live in that grid)."""
    from PIL import Image

    from grit_lite.boxes import resized_for

    capped = dataclasses.replace(train.PRESETS["tiny-cpu"], max_pixels=28 * 28 * 4)
    _, processor = train.load_model(capped)
    image = Image.new("RGB", (224, 224))
    assert resized_for(processor, image) == (56, 56)
    grid = processor(text=["<|image_pad|>"], images=[image], return_tensors="pt")
    assert grid["image_grid_thw"].tolist() == [[1, 4, 4]]  # 56 px / 14 px patches


@pytest.mark.parametrize("world", [1, 2, 4, 8])
def test_eight_completions_per_step_on_any_number_of_gpus(world):
    preset = train.PRESETS["qwen2.5-vl-3b"]
    per_device, accumulation = train.batch_split(preset, world)
    assert per_device * accumulation * world == 8
    assert per_device <= preset.max_per_device
    assert train.batch_split(train.PRESETS["qwen2.5-vl-3b-lora"], world)[0] <= 2
    with pytest.raises(train.TrainError, match="do not split"):
        train.batch_split(preset, 3)


def test_lora_preset_wraps_a_scaled_down_model():
    """The 3B LoRA preset, built on CPU around a tiny model of the same architecture."""
    from peft import get_peft_model

    model, processor = tiny.build_tiny(seed=0, hidden=64, layers=2, vision_hidden=32)
    preset = train.PRESETS["qwen2.5-vl-3b-lora"]
    base, _ = train.load_model(preset, model, processor)
    assert base is model and not hasattr(base, "peft_config")  # the trainer puts them on
    peft_model = get_peft_model(base, train.lora_config(preset))  # as GRPOTrainer does
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert all(".language_model." in n for n in trainable)  # the vision tower stays frozen
    kinds = {n.split(".lora_")[0].rsplit(".", 1)[1] for n in trainable}
    assert kinds == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_gpu_preset_fails_fast_offline(monkeypatch):
    monkeypatch.setattr(presets, "_cached", lambda name: False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(train.TrainError, match="tiny-cpu") as error:
        train.resolve_model("Qwen/Qwen2.5-VL-3B-Instruct")
    assert "--model /path/to/Qwen2.5-VL-3B-Instruct" in str(error.value)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    start = time.perf_counter()
    with pytest.raises(train.TrainError, match="cannot fetch"):
        train.resolve_model("Qwen/Qwen2.5-VL-3B-Instruct", timeout=2.0)
    assert time.perf_counter() - start < 5
    with pytest.raises(train.TrainError, match="unknown model"):
        train.resolve_model("qwen-3b")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert train.auto_preset()[0] == "tiny-cpu"


# Cards as torch reports them: (name, total memory in GiB, compute capability, preset).
CARDS = [
    ("Tesla T4 (free Colab)", 14.6, (7, 5), "qwen2.5-vl-3b-colab"),
    ("Quadro RTX 6000 (Turing, 24 GB)", 23.6, (7, 5), "qwen2.5-vl-3b-colab"),
    ("Tesla V100 32GB", 31.7, (7, 0), "qwen2.5-vl-3b-colab"),
    ("RTX 4060 Ti 16GB (Ada)", 15.6, (8, 9), "qwen2.5-vl-3b-colab"),
    ("A10G", 22.1, (8, 6), "qwen2.5-vl-3b-lora"),
    ("L4", 22.0, (8, 9), "qwen2.5-vl-3b-lora"),
    ("A100 40GB", 39.4, (8, 0), "qwen2.5-vl-3b-lora"),
    ("A100 80GB", 79.2, (8, 0), "qwen2.5-vl-3b"),
    ("H100 80GB", 79.6, (9, 0), "qwen2.5-vl-3b"),
    ("H200", 139.8, (9, 0), "qwen2.5-vl-3b"),
]


@pytest.mark.parametrize(
    ("card", "gib", "capability", "expected"), CARDS, ids=[c[0] for c in CARDS]
)
def test_each_card_gets_the_preset_its_native_precision_and_memory_allow(
    monkeypatch, card, gib, capability, expected
):
    """bf16 only from compute capability 8.0: torch's is_bf16_supported() also says True on
    Turing and Volta (emulation), and must not decide. Full fine-tuning from 75 GiB."""
    props = type("Props", (), {"name": card, "total_memory": int(gib * 2**30),
                               "major": capability[0], "minor": capability[1]})()  # fmt: skip
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # the trap
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    monkeypatch.setattr(presets, "_cached", lambda name: True)
    name, why = train.auto_preset()
    assert name == expected
    assert f"compute capability {capability[0]}.{capability[1]}" in why
    assert ("no native bf16" in why) == (capability < (8, 0))
    weights = train.weight_dtype(train.PRESETS[name])
    assert weights == (torch.float16 if capability < (8, 0) or gib < 20 else torch.bfloat16)


def test_cli_reports_offline_error_without_a_traceback(monkeypatch, tmp_path):
    monkeypatch.setattr(presets, "_cached", lambda name: False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit, match="error: cannot fetch"):
        train.main(["--preset", "qwen2.5-vl-3b", "--output", str(tmp_path)])


class _StopAt:
    """Stop a run after ``step`` optimisation steps, as a crash or a time limit would."""

    def __init__(self, step: int) -> None:
        from transformers import TrainerCallback

        outer = step

        class Stop(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step >= outer:
                    control.should_training_stop = True

        self.callback = Stop()


def _small_run(output, stop_at=None, resume=False, progress=True, extra=(), overwrite=False):
    model, processor = tiny.load_tiny(tiny.SHIPPED)  # its rewards vary: the weights move
    preset = dataclasses.replace(
        train.PRESETS["tiny-cpu"],
        max_steps=3,
        save_steps=1,
        num_generations=2,
        completions_per_step=4,
        max_completion_length=16,
        learning_rate=1e-3,
    )
    callbacks = [*extra, *([_StopAt(stop_at).callback] if stop_at else [])]
    return train.train(
        preset, output, resume=resume, model=model, processor=processor, n_rollouts=0,
        callbacks=callbacks, progress=progress, overwrite=overwrite,
    )  # fmt: skip


def test_resumed_run_continues_with_the_same_optimizer_and_scheduler(tmp_path):
    straight = _small_run(tmp_path / "straight")
    _small_run(tmp_path / "resumed", stop_at=2)
    assert (tmp_path / "resumed" / "checkpoint-2").is_dir()
    saved = torch.load(tmp_path / "resumed" / "checkpoint-2" / "optimizer.pt", weights_only=True)
    resumed = _small_run(tmp_path / "resumed", resume=True)
    assert resumed.state.global_step == straight.state.global_step == 3
    # the scheduler went on from step 2, and the optimizer's moments were carried over
    assert resumed.lr_scheduler.last_epoch == straight.lr_scheduler.last_epoch == 3
    steps = [s["step"] for s in resumed.optimizer.state_dict()["state"].values()]
    assert all(int(s) == 3 for s in steps)
    assert all(int(s["step"]) == 2 for s in saved["state"].values())
    logged = [row["step"] for row in train.read_metrics(tmp_path / "resumed" / "metrics.jsonl")]
    assert logged == [1, 2, 3]  # no step twice, none lost
    rows = train.read_metrics(tmp_path / "straight" / "metrics.jsonl")
    assert all(0 < row["generation_time"] < row["step_time"] for row in rows)
    for (name, a), (_, b) in zip(
        straight.model.named_parameters(), resumed.model.named_parameters(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6), name


def test_resume_loads_the_checkpoints_weights(tmp_path):
    """Trainer's own reload matched no key of a Qwen2.5-VL checkpoint and kept the start
    weights; the resumed run must begin from the checkpoint's."""
    from transformers import TrainerCallback

    _small_run(tmp_path, stop_at=1)
    checkpoint = tmp_path / "checkpoint-1"
    saved = tiny.load_tiny(checkpoint)[0]
    with torch.no_grad():
        for p in saved.parameters():
            p.add_(0.01)  # weights no run starts from
    saved.save_pretrained(checkpoint)
    seen = {}

    class Snapshot(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            seen.update({n: p.detach().clone() for n, p in model.named_parameters()})

    _small_run(tmp_path, resume=True, extra=[Snapshot()])
    for name, p in saved.named_parameters():
        assert torch.equal(seen[name], p), name


@pytest.mark.parametrize("name", ["zero2", "zero3", "ddp"])
def test_shipped_accelerate_configs(name):
    """accelerate's own parser reads them, and the preset splits 8 completions over them."""
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(train.REPO_CONFIGS / f"{name}.yaml"))
    assert config.mixed_precision == "bf16" and config.num_machines == 1
    if name.startswith("zero"):
        assert config.distributed_type == "DEEPSPEED"
        assert config.deepspeed_config["zero_stage"] == int(name[-1])
    per_device, accumulation = train.batch_split(
        train.PRESETS["qwen2.5-vl-3b"], config.num_processes
    )
    assert per_device * accumulation * config.num_processes == 8


def _scale_down_3b(monkeypatch) -> dict[str, int]:
    """Make ``random-3b`` build a 64-wide model with the 3B's vocabulary; returns its ids."""
    ids = tiny.special_ids(tiny.build_tiny(seed=0)[1].tokenizer)
    small = tiny.tiny_config(151936, ids, hidden=64, layers=1, vision_hidden=32, vision_depth=1)
    monkeypatch.setattr(tiny, "qwen25_vl_3b_config", lambda ids: small)
    return ids


def test_random_3b_runs_with_the_in_repo_processor(monkeypatch):
    """The benchmark model: the 3B's shape with the tiny tokenizer's ids (scaled down here)."""
    from grit_lite import data

    full_size = tiny.qwen25_vl_3b_config
    ids = _scale_down_3b(monkeypatch)
    config = full_size(ids)
    assert (
        config.text_config.vocab_size == 151936 and config.image_token_id == ids["image_token_id"]
    )
    preset = dataclasses.replace(train.PRESETS["qwen2.5-vl-3b"], model="random-3b", bf16=False)
    model, processor = train.load_model(preset)
    record, image = data.train_split()[0]
    out = tiny.generate(model, processor, [record.question], [image], max_new_tokens=4)
    assert len(out) == 1 and isinstance(out[0], str)
    assert train.resolve_model("random-3b") == "random-3b"


def test_full_fine_tuning_samples_from_bf16_and_updates_fp32_masters(monkeypatch, tmp_path):
    """GRIT's lr (2e-6) is below bf16's rounding step: the optimiser must step fp32 copies,
    while the weights that sampling reads are bf16."""
    from grit_lite import gpu

    _scale_down_3b(monkeypatch)
    full = dataclasses.replace(train.PRESETS["qwen2.5-vl-3b"], model="random-3b", device="cpu")
    lora = dataclasses.replace(full, lora=True)
    policy, _ = train.load_model(full)
    assert {p.dtype for p in policy.parameters()} == {torch.bfloat16}
    from peft import get_peft_model

    adapted = get_peft_model(train.load_model(lora)[0], train.lora_config(lora))
    frozen = {p.dtype for p in adapted.parameters() if not p.requires_grad}
    assert frozen == {torch.bfloat16}  # LoRA's base never changes: bf16 halves its memory
    assert {p.dtype for p in adapted.parameters() if p.requires_grad} == {torch.float32}
    assert train.grpo_config(full, tmp_path).model_init_kwargs == {"dtype": "bfloat16"}
    # one step at the preset's lr moves (almost) every master, and almost no bf16 weight alone
    start = (torch.randn(10_000) * 0.02).to(train.weight_dtype(full))
    weight, alone = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    weight.grad = alone.grad = torch.randn_like(weight)
    optimizer = gpu.MasterWeightAdamW([weight], lr=full.learning_rate)
    optimizer.step()
    torch.optim.AdamW([alone], lr=full.learning_rate).step()
    assert (optimizer.masters[0] != start.float()).float().mean() > 0.99
    assert (alone.detach() != start).float().mean() < 0.05


def test_in_memory_policy_gets_a_bf16_reference_for_trl(monkeypatch, tmp_path):
    """The frozen KL reference is read back in bf16: it is written in bf16, not fp32."""
    from safetensors import safe_open
    from transformers import Qwen2_5_VLForConditionalGeneration

    _scale_down_3b(monkeypatch)
    full = dataclasses.replace(train.PRESETS["qwen2.5-vl-3b"], model="random-3b", device="cpu")
    policy, _ = train.load_model(dataclasses.replace(full, bf16=False))  # fp32 in memory
    train.save_reference(policy, tmp_path / "reference", bf16=True)
    assert policy.config._name_or_path == str(tmp_path / "reference")
    assert {p.dtype for p in policy.parameters()} == {torch.float32}  # the policy is untouched
    with safe_open(tmp_path / "reference" / "model.safetensors", "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
    ref = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        tmp_path / "reference", **train.grpo_config(full, tmp_path).model_init_kwargs
    )
    for (name, a), b in zip(policy.state_dict().items(), ref.state_dict().values(), strict=True):
        assert torch.equal(a.to(torch.bfloat16), b), name


def test_quiet_run_prints_no_log_lines_but_still_logs_them(tmp_path, capsys):
    """progress=False (notebooks): no bar, no printed dicts; metrics.jsonl is complete."""
    capsys.readouterr()
    _small_run(tmp_path / "quiet", progress=False)
    printed = capsys.readouterr()
    assert "'loss'" not in printed.out and "/3 [" not in printed.err  # the trainer's bar
    logged = train.read_metrics(tmp_path / "quiet" / "metrics.jsonl")
    assert [row["step"] for row in logged] == [1, 2, 3]
    _small_run(tmp_path / "quiet", progress=False, overwrite=True)  # a new run, same folder
    logged = train.read_metrics(tmp_path / "quiet" / "metrics.jsonl")
    assert [row["step"] for row in logged] == [1, 2, 3]  # its own steps, not the old run's too


def test_command_line_overrides_reach_the_preset(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(train, "train", lambda preset, output, **kw: seen.update(p=preset, **kw))
    train.main(["--preset", "tiny-cpu", "--output", str(tmp_path), "--beta", "0.1",
                "--temperature", "1.5", "--num-generations", "4", "--lr", "5e-5",
                "--warmup", "0.25", "--loss-type", "dr_grpo"])  # fmt: skip
    preset = seen["p"]
    assert (preset.beta, preset.temperature, preset.learning_rate) == (0.1, 1.5, 5e-5)
    assert (preset.warmup, preset.loss_type) == (0.25, "dr_grpo")
    assert (preset.num_generations, preset.completions_per_step) == (4, 8)  # still 2 prompts
    assert preset.max_steps == train.PRESETS["tiny-cpu"].max_steps  # untouched
    assert seen["n_rollouts"] == 4  # before/after samples by default
    train.main(["--preset", "tiny-cpu", "--output", str(tmp_path), "--rollouts", "0"])
    assert seen["n_rollouts"] == 0  # benchmarks time training alone
