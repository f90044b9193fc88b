"""Evaluation of the tiny model's skills on the held-out split, and generation in batches.

:func:`evaluate_skills` measures the skills (the numbers on the model card);
:func:`zero_shot_report` says how far completions to the GRIT prompt already are from GRIT's
format before RL: far enough to leave something to learn, close enough to be rewarded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from grit_lite import data, world
from grit_lite.boxes import grounding_scores, parse_boxes
from grit_lite.tiny.frame import to_model_frame
from grit_lite.tiny.model import _user

_LABEL = re.compile(rf"({'|'.join(world.COLOURS)}) ({'|'.join(world.SHAPES)})")


@torch.no_grad()
def generate(
    model: Any,
    processor: Any,
    prompts: Sequence[str],
    images: Sequence[Image.Image],
    max_new_tokens: int = 64,
    batch: int = 16,
    sample: bool = False,
    prefixes: Sequence[str] | None = None,
) -> list[str]:
    """Greedy completions for (prompt text, image) pairs, batched with left padding; with
    ``sample``, draws at temperature 1 from the full distribution, as GRPO's rollouts do.
    ``prefixes`` start each reply as if the model had written them (it continues after
    them; the prefix is not repeated in the output): how a think is swapped for another.

    Decoding runs on one thread: its matrices are so small that a second OpenMP thread
    mostly spin-waits, and on a shared 2-core machine that made decoding ~20x slower.
    """
    outs: list[str] = []
    starts = list(prefixes) if prefixes is not None else [""] * len(prompts)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for i in range(0, len(prompts), batch):
            outs += _generate_batch(
                model, processor, prompts[i : i + batch], images[i : i + batch], max_new_tokens,
                sample, starts[i : i + batch],
            )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    return outs


def _generate_batch(
    model: Any,
    processor: Any,
    prompts: Sequence[str],
    images: Sequence[Image.Image],
    max_new_tokens: int,
    sample: bool,
    prefixes: Sequence[str],
) -> list[str]:
    tok = processor.tokenizer
    outs: list[str] = []
    texts = [processor.apply_chat_template(_user(p), add_generation_prompt=True) for p in prompts]
    texts = [text + start for text, start in zip(texts, prefixes, strict=True)]
    tok.padding_side = "left"
    try:
        enc = processor(text=texts, images=list(images), return_tensors="pt", padding=True)
        enc = enc.to(model.device)
    finally:
        tok.padding_side = "right"
    how = {"temperature": 1.0, "top_k": 0, "top_p": 1.0} if sample else {}
    ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=sample, **how)
    outs += tok.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return outs


def evaluate_skills(
    model: Any, processor: Any, n: int = 50, grit_prompt: bool = True
) -> dict[str, Any]:
    """Skill scores on ``n`` held-out items (:func:`grit_lite.data.eval_split`).

    ``grounding_iou``: mean IoU (Hungarian matching, :func:`grit_lite.boxes.grounding_scores`)
    of the boxes answered to "Locate every <label>." for each key object of an item;
    ``counting_acc`` / ``spatial_acc``: exact answers to the plain question; with
    ``grit_prompt`` also the zero-shot think/rethink format reward (max 0.5) and the fraction
    of completions with any GRIT tag, when the GRIT prompt is used before any RL (see
    :func:`zero_shot_report`), greedy (``zero_shot_*``) and for 4 samples per item at
    temperature 1 (``sampled_*``, what GRPO's groups are made of).
    """
    from grit_lite.format import build_prompt

    items = data.eval_split(n)
    g_prompts, g_images, g_truth = [], [], []
    for record, image in items:
        labels = [" ".join(m) for m in _LABEL.findall(record.question)]
        if record.dataset == "vsr":
            pairs = list(zip(labels, record.bboxs, strict=True))
            for label, box in pairs:
                g_prompts.append(f"Locate every {label}.")
                g_images.append(image)
                g_truth.append([box])
        elif record.bboxs:
            g_prompts.append(f"Locate every {labels[0]}.")
            g_images.append(image)
            g_truth.append(record.bboxs)
    g_out = generate(model, processor, g_prompts, g_images, max_new_tokens=160)
    ious = [
        grounding_scores(parse_boxes(o), [to_model_frame(b) for b in t])["mean_iou"]
        for o, t in zip(g_out, g_truth, strict=True)
    ]
    q_out = generate(model, processor, [r.question for r, _ in items], [im for _, im in items], 8)
    scores: dict[str, list[float]] = {"tallyqa": [], "vsr": []}
    for (record, _), o in zip(items, q_out, strict=True):
        scores[record.dataset].append(float(o.strip().lower() == record.answer))
    result = {
        "grounding_iou": sum(ious) / len(ious),
        "counting_acc": sum(scores["tallyqa"]) / max(1, len(scores["tallyqa"])),
        "spatial_acc": sum(scores["vsr"]) / max(1, len(scores["vsr"])),
    }
    if grit_prompt:
        prompts = [build_prompt(r.question) for r, _ in items]
        images = [im for _, im in items]
        result |= zero_shot_report(generate(model, processor, prompts, images, 96))
        torch.manual_seed(0)  # GRPO samples: what matters is whether *samples* carry tags
        sampled = generate(
            model, processor, [p for p in prompts for _ in range(4)],
            [im for im in images for _ in range(4)], 96, sample=True,
        )  # fmt: skip
        report = zero_shot_report(sampled)
        result |= {k.replace("zero_shot", "sampled"): v for k, v in report.items()}
    return result


@torch.no_grad()
def after_parts_accuracy(model: Any, processor: Any, n: int = 100, seed: int = 999) -> float:
    """Spatial accuracy when the answer comes *after* other output (greedy, 96 tokens).

    Stage 2's multi-part instructions with a spatial question on ``n`` fresh scenes: boxes,
    shapes or a count between named tags first, then the yes/no answer after a last tag.
    GRIT's chain asks exactly this, and the shipped base model answers plain spatial
    questions 100 % right but these near chance: the gap GRPO cannot close.
    """
    import random

    from grit_lite.tiny.tasks import _multi_part, _random_scene

    rng = random.Random(seed)
    prompts, images, wanted = [], [], []
    while len(prompts) < n:
        scene = _random_scene(rng)
        prompt, reply = _multi_part(rng, scene, spatial=True)
        last, _, answer = reply.rpartition("<")[2].partition(">")
        if answer in ("yes", "no"):  # no unambiguous pair: a counting question, skipped
            prompts.append(prompt)
            images.append(world.render(scene))
            wanted.append((f"<{last}>", answer))
    outs = generate(model, processor, prompts, images, 96)
    right = 0
    for out, (tag, answer) in zip(outs, wanted, strict=True):
        said = out.rpartition(tag)[2].split() if tag in out else []
        right += bool(said) and said[0].strip(".<").lower().startswith(answer)
    return right / n


GRIT_TAGS = ("<think>", "</think>", "<rethink>", "</rethink>", "<answer>")


def zero_shot_report(completions: Sequence[str]) -> dict[str, Any]:
    """How far completions to the GRIT prompt already are from GRIT's format, before RL.

    ``zero_shot_format``: mean think/rethink format reward (max 0.5); ``zero_shot_any_tag``:
    fraction with at least one GRIT tag; ``zero_shot_tags``: fraction containing each tag;
    ``zero_shot_format_values``: fraction of completions at each reward value. RL needs
    both: a mean well below 0.5 (something to learn) and some tags (something to reward).
    """
    from grit_lite.rewards import think_rethink_format_score

    n = max(1, len(completions))
    scores = [round(think_rethink_format_score(c), 3) for c in completions]
    return {
        "zero_shot_format": sum(scores) / n,
        "zero_shot_any_tag": sum(any(t in c for t in GRIT_TAGS) for c in completions) / n,
        "zero_shot_tags": {t: sum(t in c for c in completions) / n for t in GRIT_TAGS},
        "zero_shot_format_values": {v: scores.count(v) / n for v in sorted(set(scores))},
    }
