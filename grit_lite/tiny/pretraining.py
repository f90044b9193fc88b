"""Pretraining the tiny model: the vision tower on its own, then the skills phase by phase.

Qwen's two parts in miniature: :func:`pretrain_vision` teaches the tower what each image
token holds and where, then :func:`pretrain` trains the language model on the skills with the
tower frozen, and :func:`pretrain_recipe` runs the phases of :data:`RECIPE`, each building on
the one before.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from grit_lite import world
from grit_lite.tiny.frame import MERGE, PATCH, SIDE, first_box_cell
from grit_lite.tiny.model import build_tiny, save_tiny
from grit_lite.tiny.skills import generate
from grit_lite.tiny.tasks import _random_scene, collate, pretraining_examples


def cell_targets(scenes: Sequence[world.Scene]) -> dict[str, torch.Tensor]:
    """Per image token: colour and shape of the object in it (0 = empty), its row and column,
    and the object's box inside the token (fractions of a token side; 0 where empty).

    At the tiny model's 112 px a 56 px grid cell of the canvas is exactly one merged token,
    so every token holds at most one object and these labels are exact.
    """
    side = world.CANVAS // world.CELL
    n = len(scenes)
    out = {k: torch.zeros(n, side * side, dtype=torch.long) for k in ("colour", "shape")}
    out["row"] = torch.arange(side * side).div(side, rounding_mode="floor").repeat(n, 1)
    out["col"] = torch.arange(side * side).remainder(side).repeat(n, 1)
    out["box"] = torch.zeros(n, side * side, 4)
    colours, shapes = list(world.COLOURS), list(world.SHAPES)
    for i, scene in enumerate(scenes):
        for obj in scene.objects:
            x1, y1, x2, y2 = obj.box
            cx, cy = obj.cell
            t = cy * side + cx
            out["colour"][i, t] = colours.index(obj.colour) + 1
            out["shape"][i, t] = shapes.index(obj.shape) + 1
            ox, oy = cx * world.CELL, cy * world.CELL
            out["box"][i, t] = torch.tensor([x1 - ox, y1 - oy, x2 - ox, y2 - oy]) / world.CELL
    return out


def pretrain_vision(
    model: Any, processor: Any, steps: int = 1000, lr: float = 3e-3, batch: int = 32, seed: int = 0
) -> list[float]:
    """Stage 0: the vision tower alone learns what is in each image token and where.

    Real VLMs start from a vision encoder pretrained on its own (Qwen2.5-VL's ViT). Ours
    gets dense labels instead: a linear head on every merged token predicts the colour,
    shape, row, column and box of what the token holds (:func:`cell_targets`); the head is
    thrown away. Measured: without it, 1400 steps of the whole model left grounding at IoU
    0.03 and counting at chance; with it the tokens encode colour, shape and row within
    ~100 steps and the column (which only rotary positions and the image edges reveal)
    within ~350-500, and the shipped recipe reaches IoU 0.21 (``docs/experiment_log.md``).
    """
    visual = model.model.visual
    side = world.CANVAS // world.CELL
    assert SIDE * world.CELL == world.CANVAS * PATCH * MERGE, "a grid cell must be one token"
    sizes = {"colour": len(world.COLOURS) + 1, "shape": len(world.SHAPES) + 1, "row": side,
             "col": side, "box": 4}  # fmt: skip
    torch.manual_seed(seed)
    head = torch.nn.Linear(visual.merger.mlp[-1].out_features, sum(sizes.values()))
    params = list(visual.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    rng = random.Random(seed)
    visual.train()
    losses = []
    for _ in range(steps):
        scenes = [_random_scene(rng) for _ in range(batch)]
        images = [world.render(s) for s in scenes]
        enc = processor.image_processor(images=images, return_tensors="pt")
        feats = visual(enc["pixel_values"], grid_thw=enc["image_grid_thw"]).pooler_output
        parts = head(feats).view(batch, side * side, -1).split(list(sizes.values()), -1)
        logits = dict(zip(sizes, parts, strict=True))
        target = cell_targets(scenes)
        loss = sum(
            torch.nn.functional.cross_entropy(logits[k].flatten(0, 1), target[k].flatten())
            for k in ("colour", "shape", "row", "col")
        )
        full = target["colour"] > 0
        loss = loss + 10 * torch.nn.functional.mse_loss(logits["box"][full], target["box"][full])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    visual.eval()
    return losses


def length_grouped(
    rng: random.Random, batch: int, mix: dict[str, float] | None = None, pool: int = 8
) -> Iterator[list[dict[str, Any]]]:
    """Endless batches of :func:`pretraining_examples`, each of examples of similar length.

    A batch is padded to its longest example, and a grounding answer with six boxes is four
    times as long as a yes/no: measured on random batches of the mix, 70 % of the tokens
    were padding. Drawing ``pool`` batches at once, sorting them by length and shuffling the
    resulting batches (the ``group_by_length`` of transformers' Trainer) keeps the mix and
    cuts the padding.
    """
    while True:
        examples = pretraining_examples(rng, batch * pool, mix)
        examples.sort(key=lambda e: len(e["prompt"]) + len(e["answer"]))
        groups = [examples[i : i + batch] for i in range(0, len(examples), batch)]
        rng.shuffle(groups)
        yield from groups


def pretrain(
    steps: int = 7000,
    lr: float = 1e-3,
    batch: int = 16,
    out: str | Path | None = None,
    seed: int = 0,
    log_every: int = 25,
    model: Any = None,
    processor: Any = None,
    mix: dict[str, float] | None = None,
    warmup: int = 50,
    progress: bool = True,
    vision_steps: int = 1000,
    stop: Callable[[], bool] | None = None,
    check_every: int = 500,
) -> tuple[Any, Any, list[float]]:
    """Supervised pretraining of the separate skills; returns (model, processor, losses).

    First ``vision_steps`` of :func:`pretrain_vision` (stage 0), then the language model
    learns the skills on top of the tower, frozen as LLaVA freezes its CLIP encoder (the
    tower already knows what each token holds; the language model's noisy early gradients
    would only blur it, and skipping its backward pass saves time). AdamW with linear
    warm-up then cosine decay to 10 % of ``lr``; fresh examples every step (the synthetic
    world is unlimited, so there is no epoch and nothing to overfit). Deterministic for a
    given seed. Saves model and processor to ``out`` if given. ``stop``, asked every
    ``check_every`` steps, ends the run early when it returns True (a measured skill instead
    of a fixed length).
    """
    from tqdm.auto import tqdm

    if model is None:
        model, processor = build_tiny(seed)
    if vision_steps:
        pretrain_vision(model, processor, vision_steps, seed=seed)
    model.model.visual.requires_grad_(False)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.95))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress_ = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    model.train()
    losses: list[float] = []
    bar = tqdm(range(steps), desc="pretrain", disable=not progress)
    start = time.perf_counter()
    batches = length_grouped(rng, batch, mix)
    for step in bar:
        inputs = collate(processor, next(batches))
        loss = model(**inputs).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if (step + 1) % log_every == 0 or step + 1 == steps:
            recent = sum(losses[-log_every:]) / len(losses[-log_every:])
            bar.set_postfix(loss=f"{recent:.3f}")
            if not progress:
                elapsed = time.perf_counter() - start
                print(f"step {step + 1} loss {recent:.4f} ({elapsed:.0f} s)", flush=True)
        if stop is not None and (step + 1) % check_every == 0 and step + 1 < steps:
            model.eval()
            done = stop()
            model.train()
            if done:
                break
    model.eval()
    if out is not None:
        save_tiny(model, processor, out)
    return model, processor, losses


def right_cell(model: Any, processor: Any, n: int = 64, seed: int = 4321) -> float:
    """Fraction of "Locate every <label>." answers whose first box lies in the object's cell.

    Grounding hangs on one look-up: from a name in the prompt to the image token holding it.
    Before it forms, boxes sit on the middle cells (the loss-optimal guess) and the loss
    barely shows the difference; once it forms, a box in the right cell has IoU ~0.7. So
    this, not the loss, says when the look-up phase is done (measured in
    ``docs/experiment_log.md``: loss 0.241 with 50 % right cells, 0.230 with 86 %).
    """
    rng = random.Random(seed)
    prompts, images, cells = [], [], []
    while len(prompts) < n:
        scene = _random_scene(rng)
        unique = world.unique_objects(scene)
        if unique:
            obj = rng.choice(unique)
            prompts.append(f"Locate every {obj.label}.")
            images.append(world.render(scene))
            cells.append(obj.cell)
    texts = generate(model, processor, prompts, images, 48)
    return sum(first_box_cell(t) == c for t, c in zip(texts, cells, strict=True)) / n


# Stage 1, phase by phase: (name, mix, steps, lr). The look-up phase repeats (each pass a fresh
# warm-up and cosine) until :func:`right_cell` reaches LOOKUP_BAR, at most LOOKUP_PASSES times.
# Spatial yes/no comes last, one relation at a time: asked about all four at once the model
# stayed at chance; "left of" alone it learnt in 300 steps, each relation added after it
# followed, and the vertical pair came in together once "above" was known
# (docs/experiment_log.md). Format and instruction kinds stay in the mix: left out, the
# tags GRPO needs in its samples were gone.
_KEEP = {"where2": 0.05, "ground": 0.15, "count": 0.1, "format": 0.05, "instruct": 0.05,
         "multipart": 0.05}  # fmt: skip
RECIPE = (
    ("look-up", {"ground": 1.0}, 1500, 1e-3),
    ("places", {"where2": 0.3, "spatial": 0.25, "ground": 0.2, "count": 0.25}, 1500, 5e-4),
    ("compare", {"where": 0.1, "where2": 0.4, "spatial": 0.4, "ground": 0.1}, 1500, 1e-3),
    ("all", {"describe": 0.05, "ground": 0.25, "count": 0.2, "spatial": 0.2, "where2": 0.1,
             "where": 0.05, "format": 0.05, "instruct": 0.05, "multipart": 0.05}, 1500, 5e-4),
    *(
        (name, {kind: 0.55, **_KEEP}, steps, 5e-4)
        for name, kind, steps in (
            ("left", "spatial:left of", 300),
            ("left-right", "spatial:left of,right of", 300),
            ("three", "spatial:left of,right of,above", 300),
            ("vertical", "spatial:above,below", 300),
            ("relations", "spatial", 600),
        )
    ),
)  # fmt: skip
LOOKUP_BAR, LOOKUP_PASSES = 0.8, 4


def pretrain_recipe(
    model: Any,
    processor: Any,
    seed: int = 0,
    batch: int = 16,
    scale: float = 1.0,
    snapshots: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Stage 1 as :data:`RECIPE`'s phases, in order; returns one log entry per pass.

    Why phases and not one mix: each skill rests on the one before. Mixed from the start,
    the model learnt box *templates* by place and answered spatial at chance
    (``docs/experiment_log.md``); grounding alone first grows the name -> image-token
    look-up (a phase change, at a step that varies between runs, hence the measured stop),
    the places of one and two objects then turn it into words, and spatial's comparison
    rests on those, learnt one relation at a time (the sign of the comparison depends on
    the relation's word; four words at once never got started). Grounding stays in every
    later phase: left out, it was erased.
    ``scale`` shortens every phase (tests); ``snapshots`` keeps the model after each phase
    in ``snapshots/<phase>`` (to probe or resume a phase without rerunning the ones before).
    """
    log = []
    for i, (name, mix, steps, lr) in enumerate(RECIPE):
        measured = name == "look-up"  # the phase that repeats until right_cell passes
        for p in range(LOOKUP_PASSES if measured else 1):
            checks: list[float] = []

            def done(checks: list[float] = checks) -> bool:
                checks.append(right_cell(model, processor))
                print(f"look-up: right cell {checks[-1]:.0%}", flush=True)
                return checks[-1] >= LOOKUP_BAR

            start = time.perf_counter()
            _, _, losses = pretrain(
                max(1, int(steps * scale)), lr, batch, None, seed + 10 * i + p, model=model,
                processor=processor, mix=mix, warmup=20, progress=False, vision_steps=0,
                stop=done if measured else None, check_every=max(1, int(500 * scale)),
            )  # fmt: skip
            if measured and (not checks or checks[-1] < LOOKUP_BAR):
                done()  # the pass's last step: the in-loop check skips it
            log.append({"phase": name, "pass": p, "steps": len(losses), "lr": lr, "mix": mix,
                        "seconds": round(time.perf_counter() - start, 1), "right_cell": checks,
                        "losses": [round(v, 4) for v in losses]})  # fmt: skip
            if checks and checks[-1] >= LOOKUP_BAR:
                break
        if snapshots is not None:
            save_tiny(model, processor, Path(snapshots) / name)
    return log
