"""grit_lite.grpo computes the same advantages, loss and gradients as TRL's GRPOTrainer.

One fixed batch: two prompts (lengths 3 and 5, so TRL left-pads one) times four
completions of different lengths (TRL right-pads them), fixed rewards (the second group
all equal, so its advantages are 0), a tiny random Qwen2 saved to a temporary folder.
TRL's generation is replaced by its ``rollout_func`` hook returning those token ids, so
``_generate_and_score_completions`` runs for real (padding, rewards, advantages, the
reference model's log-probabilities) and ``_compute_loss`` gives TRL's loss. We rebuild
everything with plain torch and ``grit_lite.grpo`` and compare.

``use_bias_correction_kl=False``: TRL 1.16 multiplies the KL by the importance ratio by
default (DeepSeek-V3.2). The value is unchanged when the ratio is 1, but the gradient is
not; GRIT's objective (and older TRL) has no such factor.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from grit_lite.grpo import completion_logprobs, group_advantages, grpo_loss, grpo_metrics

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is "experimental"
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

PAD, EOS = 0, 1
PROMPTS = [[5, 6, 7], [8, 9, 10, 11, 12]]
COMPLETIONS = [
    [20, 21, 22, EOS],
    [23, EOS],
    [24, 25, 26, 27, 28, EOS],
    [29, 30, EOS],
    [31, EOS],
    [32, 33, 34, EOS],
    [35, 36],  # truncated: no EOS
    [37, 38, 39, 40, 41, 42],
]
REWARDS = [1.0, 0.0, 0.5, 0.0, 2.0, 2.0, 2.0, 2.0]
GROUP = 4
TEMPERATURE = 0.7
MAX_COMPLETION_LENGTH = 8
BETA = 0.01
TOL = 1e-5


def _tokenizer() -> PreTrainedTokenizerFast:
    words = ["<pad>", "<eos>", "<unk>"] + [f"w{i}" for i in range(61)]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random Qwen2 (64 tokens, 2 layers) saved where TRL can load it twice."""
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        initializer_range=0.2,  # peaked, non-uniform next-token distributions
        tie_word_embeddings=False,
        pad_token_id=PAD,
        eos_token_id=EOS,
        bos_token_id=EOS,
    )
    path = str(tmp_path_factory.mktemp("tiny_qwen2"))
    Qwen2ForCausalLM(config).save_pretrained(path)
    _tokenizer().save_pretrained(path)
    return path


def _rollout(prompts: list, trainer: GRPOTrainer) -> dict:
    """Stand-in for generation: the fixed prompt and completion token ids."""
    return {
        "prompt_ids": [PROMPTS[0]] * GROUP + [PROMPTS[1]] * GROUP,
        "completion_ids": COMPLETIONS,
        "logprobs": None,
    }


def _fixed_rewards(completions: list, **kwargs: object) -> list[float]:
    return REWARDS


def _trl_batch(model_dir: str, loss_type: str, scale_rewards: str = "group") -> tuple:
    """A GRPOTrainer whose policy has drifted from its reference, and its scored batch."""
    with warnings.catch_warnings():  # transformers' deprecations, TRL's experimental notes
        warnings.simplefilter("ignore")
        args = GRPOConfig(
            output_dir=os.path.join(model_dir, "out"),
            per_device_train_batch_size=2 * GROUP,
            num_generations=GROUP,
            max_completion_length=MAX_COMPLETION_LENGTH,
            temperature=TEMPERATURE,
            beta=BETA,
            loss_type=loss_type,
            scale_rewards=scale_rewards,
            use_bias_correction_kl=False,
            report_to="none",
            use_cpu=True,
            bf16=False,
        )
        trainer = GRPOTrainer(
            model=model_dir,
            reward_funcs=_fixed_rewards,
            args=args,
            train_dataset=Dataset.from_dict({"prompt": ["w1 w2", "w3"]}),
            processing_class=_tokenizer(),
            rollout_func=_rollout,
        )
    # TRL loaded the reference from the same folder; move the policy away from it so the
    # KL term is not trivially 0.
    torch.manual_seed(1)
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(0.03 * torch.randn_like(p))
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop; we call directly
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = trainer._generate_and_score_completions(
            [{"prompt": "w1 w2"}] * 4 + [{"prompt": "w3"}] * 4
        )
    return trainer, batch


def _padded_inputs() -> tuple[torch.Tensor, ...]:
    """Prompts left-padded, completions right-padded, as TRL lays out a batch."""
    prompts = [PROMPTS[0]] * GROUP + [PROMPTS[1]] * GROUP
    p_len = max(map(len, prompts))
    c_len = max(map(len, COMPLETIONS))
    prompt_ids = torch.tensor([[PAD] * (p_len - len(p)) + p for p in prompts])
    prompt_mask = torch.tensor([[0] * (p_len - len(p)) + [1] * len(p) for p in prompts])
    completion_ids = torch.tensor([c + [PAD] * (c_len - len(c)) for c in COMPLETIONS])
    completion_mask = torch.tensor([[1] * len(c) + [0] * (c_len - len(c)) for c in COMPLETIONS])
    return prompt_ids, prompt_mask, completion_ids, completion_mask


def _our_logprobs(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    prompt_ids, prompt_mask, completion_ids, completion_mask = _padded_inputs()
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    return completion_logprobs(logits, completion_ids, temperature=TEMPERATURE), completion_mask


@pytest.fixture(scope="module")
def reference(model_dir: str) -> torch.nn.Module:
    """Our own copy of the reference model, loaded independently of TRL."""
    return Qwen2ForCausalLM.from_pretrained(model_dir).eval()


def test_batch_layout_matches_trl(model_dir: str) -> None:
    _, batch = _trl_batch(model_dir, "grpo")
    ours = _padded_inputs()
    for key, tensor in zip(
        ["prompt_ids", "prompt_mask", "completion_ids", "completion_mask"], ours, strict=True
    ):
        assert torch.equal(batch[key].cpu(), tensor), key


@pytest.mark.parametrize(("scale_rewards", "scale"), [("group", True), ("none", False)])
def test_advantages_match_trl(model_dir: str, scale_rewards: str, scale: bool) -> None:
    _, batch = _trl_batch(model_dir, "grpo", scale_rewards=scale_rewards)
    ours = group_advantages(torch.tensor(REWARDS), GROUP, scale=scale)
    diff = (batch["advantages"] - ours).abs().max().item()
    assert diff <= 1e-6, diff
    assert ours[0] > 0.5 and ours[4:].abs().max() == 0  # not a trivially all-zero batch


def test_reference_logprobs_match_trl(model_dir: str, reference: torch.nn.Module) -> None:
    _, batch = _trl_batch(model_dir, "grpo")
    with torch.no_grad():
        ref_logp, mask = _our_logprobs(reference)
    diff = ((batch["ref_per_token_logps"] - ref_logp) * mask).abs().max().item()
    assert diff <= TOL, diff


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dapo", "dr_grpo"])
def test_loss_and_gradients_match_trl(
    model_dir: str, reference: torch.nn.Module, loss_type: str
) -> None:
    trainer, batch = _trl_batch(model_dir, loss_type)
    model = trainer.model
    params = [p for p in model.parameters() if p.requires_grad]

    trl_loss = trainer._compute_loss(model, batch)
    trl_grads = torch.autograd.grad(trl_loss, params)

    logp, mask = _our_logprobs(model)  # the unpatched forward: full logits, then our shift
    with torch.no_grad():
        ref_logp, _ = _our_logprobs(reference)
    advantages = group_advantages(torch.tensor(REWARDS), GROUP)
    loss = grpo_loss(
        logp,
        None,
        ref_logp,
        advantages,
        mask,
        beta=BETA,
        loss_type=loss_type,
        max_completion_length=MAX_COMPLETION_LENGTH,
    )
    grads = torch.autograd.grad(loss, params)

    loss_diff = abs(loss.item() - trl_loss.item())
    grad_diff = max((a - b).abs().max().item() for a, b in zip(grads, trl_grads, strict=True))
    grad_scale = max(g.abs().max().item() for g in trl_grads)
    assert grpo_metrics(logp, None, ref_logp, advantages, mask)["kl"] > 1e-3  # KL term matters
    assert loss_diff <= TOL, loss_diff
    assert grad_scale > 1e-3 and grad_diff <= TOL * grad_scale, (grad_diff, grad_scale)


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo"])
def test_off_policy_clipped_loss_matches_trl(
    model_dir: str, reference: torch.nn.Module, loss_type: str
) -> None:
    """Old log-probs unlike the current ones: the ratio is not 1 and clipping binds."""
    trainer, batch = _trl_batch(model_dir, loss_type)
    logp, mask = _our_logprobs(trainer.model)
    with torch.no_grad():
        ref_logp, _ = _our_logprobs(reference)
    torch.manual_seed(2)
    old_logp = (logp.detach() + 0.5 * torch.randn_like(logp)) * mask
    trl_loss = trainer._compute_loss(trainer.model, {**batch, "old_per_token_logps": old_logp})

    advantages = group_advantages(torch.tensor(REWARDS), GROUP)
    loss = grpo_loss(
        logp,
        old_logp,
        ref_logp,
        advantages,
        mask,
        beta=BETA,
        loss_type=loss_type,
        max_completion_length=MAX_COMPLETION_LENGTH,
    )
    assert grpo_metrics(logp, old_logp, ref_logp, advantages, mask)["clip_fraction"] > 0
    assert abs(loss.item() - trl_loss.item()) <= TOL, (loss.item(), trl_loss.item())
