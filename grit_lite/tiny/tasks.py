"""Pretraining data for the tiny model: the separate skills, never the GRIT chain.

Each example is a scene of the synthetic world with one prompt and its target: describe,
ground (boxes in the model's frame), count, spatial yes/no, format following and
instructions of several parts. :data:`TASK_MIX` and :data:`INSTRUCT_MIX` weigh the kinds;
:func:`collate` turns examples into a batch with the loss on the answer only.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

import torch

from grit_lite import world
from grit_lite.tiny.frame import to_model_frame

# Tag words for the format-following skill. GRIT's own tags are excluded on purpose: the
# base model may learn to copy *a* tag from an instruction, never the GRIT chain itself.
FORMAT_TAGS = (
    "result", "final", "reply", "output", "count", "value", "response", "solution",
    "label", "verdict", "number", "info", "note", "out", "res", "ans", "box", "pred",
)  # fmt: skip
GRIT_TAG_NAMES = ("think", "rethink", "answer")  # stage 1 never shows them; stage 2 singly


def _random_scene(rng: random.Random) -> world.Scene:
    """0-6 copies of one label plus 1-4 random others (the eval split counts 0..6)."""
    labels = [(c, s) for c in world.COLOURS for s in world.SHAPES]
    target = rng.choice(labels)
    k = rng.randint(0, 6)
    others = [rng.choice(labels) for _ in range(rng.randint(1, 4))]
    picked = [target] * k + others
    rng.shuffle(picked)
    return world.make_scene(rng, picked)


def reading_order(objects: Sequence[world.Obj], cell: int = world.CELL) -> list[world.Obj]:
    """Row by row of the scene's grid, left to right: the one order captions and box lists
    share, so that what comes first in an answer depends on the image alone."""
    return sorted(objects, key=lambda o: (o.box[1] // cell, o.box[0]))


def grounding_answer(objects: Sequence[world.Obj]) -> str:
    """Qwen2.5-VL's JSON grounding answer, in the resized image's pixels, in reading order.

    The order matters for learning: with the boxes in random order the first box of the
    answer is any of the matching objects, and the best a model can do under the
    cross-entropy loss is the *average* box (measured: one fixed box for every image).
    """
    items = [{"bbox_2d": to_model_frame(o.box), "label": o.label} for o in reading_order(objects)]
    return json.dumps(items)


_GROUND_PROMPTS = (
    "Locate every {label}.",
    "Locate every {label} and output its bbox coordinates in JSON format.",
    "Find all {plural} in the image.",
    "Where are the {plural}? Give their boxes.",
)


_DESCRIBE_PROMPTS = ("Describe the image.", "What shapes are in the picture?", "List the shapes.")


def describe(scene: world.Scene, cell: int = world.CELL) -> str:
    """The shapes of a scene in reading order (row by row of its grid), e.g. "red circle,
    blue square": a caption, the first thing a vision-language model learns to read."""
    return ", ".join(o.label for o in reading_order(scene.objects, cell))


def _task(rng: random.Random, scene: world.Scene, kind: str) -> tuple[str, str]:
    """One (prompt, answer) pair of the given skill about ``scene``."""
    if kind == "describe":
        return rng.choice(_DESCRIBE_PROMPTS), describe(scene)
    if kind == "ground":
        if rng.random() < 0.8:
            colour, shape = rng.choice(scene.objects).label.split()
        else:
            colour, shape = rng.choice(sorted(world.COLOURS)), rng.choice(world.SHAPES)
        hits = [o for o in scene.objects if (o.colour, o.shape) == (colour, shape)]
        template = rng.choice(_GROUND_PROMPTS)
        prompt = template.format(label=f"{colour} {shape}", plural=f"{colour} {shape}s")
        return prompt, grounding_answer(hits)
    if kind == "count":
        q = world.counting_question(scene, rng, rng.choice(scene.objects).label.split())
        if rng.random() < 0.3:  # sometimes a label that is absent: answer 0
            q = world.counting_question(scene, rng)
        return q.question, q.answer
    if kind == "instruct":
        return _instruct(rng, scene)
    if kind.startswith("multipart"):  # "multipart:spatial[:left of,...]": spatial questions only
        relations = kind.split(":")[2].split(",") if kind.count(":") == 2 else world.RELATIONS
        return _multi_part(rng, scene, kind.startswith("multipart:spatial"), relations)
    if kind in ("where", "where2"):
        return _where(rng, scene, 1 if kind == "where" else 2) or _task(rng, scene, "count")
    if kind.startswith("spatial"):  # "spatial", or "spatial:left of,right of" for only those
        relations = kind.partition(":")[2].split(",") if ":" in kind else world.RELATIONS
        q = world.spatial_question(scene, rng, relations=relations)
        if q is None:
            return _task(rng, scene, "count")
        return q.question, q.answer
    # "format": a counting or spatial question with an instruction to wrap the answer
    prompt, answer = _task(rng, scene, rng.choice(("count", "spatial")))
    tag = rng.choice(FORMAT_TAGS)
    instruction = rng.choice(
        (
            "Answer inside <{t}> </{t}>.",
            "Put the answer between <{t}> and </{t}>.",
            "Write the answer in <{t}></{t}> tags.",
        )
    ).format(t=tag)
    return f"{prompt} {instruction}", f"<{tag}>{answer}</{tag}>"


def _where(rng: random.Random, scene: world.Scene, n: int) -> tuple[str, str] | None:
    """ "In which columns are the A and the B?" -> "2 and 4": the stepping stone to spatial.

    "Is the A left of the B?" needs two look-ups (where is A, where is B) and a comparison
    behind one yes/no token, a sparse signal that a model learns late or never (measured:
    spatial stayed at chance over many probes). Naming the places first gives each look-up
    its own answer token; in the probes that learnt them, and only there, spatial left chance
    (``docs/experiment_log.md``). Only objects that are alone of their label are asked
    about, so the answer is unambiguous.
    """
    unique = world.unique_objects(scene)
    if len(unique) < n:
        return None
    picked = rng.sample(unique, n)
    axis = rng.choice(("column", "row"))
    where = [str(o.cell[0 if axis == "column" else 1] + 1) for o in picked]
    names = " and ".join(f"the {o.label}" for o in picked)
    verb = "is" if n == 1 else "are"
    return f"In which {axis}{'s' * (n > 1)} {verb} {names}?", " and ".join(where)


def _instruct(rng: random.Random, scene: world.Scene) -> tuple[str, str]:
    """Stage 2's format following: longer instructions phrased like GRIT's, one tag each.

    The GRIT suffix names a tag "between <think> and </think>" and asks to answer "after
    <answer>"; a model that has only seen "Answer inside <t> </t>" does not map that onto
    anything (measured: 0 % GRIT tags zero-shot). Here the same phrasings wrap *one*
    output -- an answer, or grounding boxes -- in *one* tag, with a filler sentence around
    it. A real instruction-tuned model has met ``think`` and ``answer`` as tag names, and a
    300-step pilot with made-up names only learned to open *some* tag, not to copy the one
    the prompt names (0 % GRIT tags zero-shot, again), so in 30 % of the answer-wrapping
    examples the tag is one of GRIT's names. Still never a chain: one tag per example, a
    GRIT name never around boxes, never the GRIT prompt; RL must discover the
    think-boxes-rethink-answer order.
    """
    kind = rng.choice(("count", "spatial", "ground"))
    prompt, answer = _task(rng, scene, kind)
    grit_name = kind != "ground" and rng.random() < 0.3
    tag = rng.choice(GRIT_TAG_NAMES if grit_name else FORMAT_TAGS)
    what = "the coordinates in JSON with key 'bbox_2d'" if kind == "ground" else "the answer"
    after = kind != "ground" and rng.random() < 0.4
    if after:  # "answer the question after <t>." -> "<t>3" (no closing tag, as in GRIT)
        instruction = rng.choice(
            ("Then, answer the question after <{t}>.", "Answer the question after <{t}>.")
        )
        reply = f"<{tag}>{answer}"
    else:
        instruction = rng.choice(
            (
                "First, write {w} between <{t}> and </{t}>.",
                "Output {w} between <{t}> </{t}>.",
                "Give {w} between <{t}> and </{t}>, based on the image.",
            )
        )
        reply = f"<{tag}>{answer}</{tag}>"
    filler = rng.choice(("", "Be brief. ", "Look at the image. ", "Use the image. "))
    return f"{prompt} {filler}{instruction.format(t=tag, w=what)}", reply


_PARTS = {
    "shapes": "list the shapes",
    "boxes": "output the coordinates needed to answer the question in JSON with key 'bbox_2d'",
    "number": "write how many shapes you see",
}


def _multi_part(
    rng: random.Random,
    scene: world.Scene,
    spatial: bool = False,
    relations: Sequence[str] = world.RELATIONS,
) -> tuple[str, str]:
    """Stage 2: one or two outputs in named tags, then the answer after a last tag.

    GRPO can only reinforce a chain it samples, and a model that has only met one tag per
    answer stops after its first closing tag (measured: about 1 % of its sampled answers to
    the GRIT prompt held two GRIT tags; 21 % with this kind in stage 2). Here an instruction
    phrased like GRIT's asks for the shapes, the boxes the question needs, or the number of
    shapes, each between tags it names, and then the answer after another:
    ``<note>[{"bbox_2d": ...}]</note> <res>3``. In half of them *one* tag carries a GRIT
    name (a made-up-names-only pilot copied made-up names into the GRIT prompt's answers
    instead): ``answer`` for the last, ``think`` or ``rethink`` for a part, and ``think``
    never around boxes. Never two GRIT names, so no example holds GRIT's chain: which
    parts, in which tags, earn reward is RL's to find.
    """
    question = world.counting_question(scene, rng, rng.choice(scene.objects).label.split())
    if spatial or rng.random() < 0.5:  # ``spatial``: always a spatial question where one exists
        question = world.spatial_question(scene, rng, relations=relations) or question
    keys = [o for o in scene.objects if [float(v) for v in o.box] in question.bboxs]
    content = {"shapes": describe(scene), "boxes": grounding_answer(keys),
               "number": str(len(scene.objects))}  # fmt: skip
    parts = rng.sample(list(_PARTS), rng.choice((1, 2)))
    tags = rng.sample(FORMAT_TAGS, len(parts) + 1)
    if rng.random() < 0.5:
        i = rng.randrange(len(tags))
        names = ["answer"] if i == len(parts) else ["rethink"] + ["think"] * (parts[i] != "boxes")
        tags[i] = rng.choice(names)
    asks = [f"{_PARTS[p]} between <{t}> and </{t}>" for p, t in zip(parts, tags, strict=False)]
    last = f"answer the question after <{tags[-1]}>."
    prompt = f"{question.question} First, {asks[0]}. Then, " + (
        f"{asks[1]} and then {last}" if len(asks) == 2 else last
    )
    reply = " ".join(f"<{t}>{content[p]}</{t}>" for p, t in zip(parts, tags, strict=False))
    return prompt, f"{reply} <{tags[-1]}>{question.answer}"


# One mix of every skill: the default of :func:`pretraining_examples` (and stage 1 before
# :data:`RECIPE`, which orders the skills in phases).
TASK_MIX = {"describe": 0.05, "ground": 0.4, "count": 0.3, "spatial": 0.15, "format": 0.1}
# Stage 2 (``python -m grit_lite.tiny finetune``): the same skills, more instruction following.
# Multi-part instructions are 40 %: after 400 steps with them the model wrote boxes in a tag
# but answered "yes" to every spatial question after them; after 1200 it answered as well
# after its boxes as GRPO needed to keep them (docs/experiment_log.md).
INSTRUCT_MIX = {
    "describe": 0.05, "ground": 0.15, "count": 0.1, "spatial": 0.1, "format": 0.05,
    "instruct": 0.15, "multipart": 0.4,
}  # fmt: skip


def pretraining_examples(
    rng: random.Random,
    n: int,
    mix: dict[str, float] | None = None,
    images: bool = True,
) -> list[dict[str, Any]]:
    """``n`` supervised examples: ``{"image", "prompt", "answer", "kind", "messages", "scene"}``.

    Skills a base model has before GRIT: describing (the shapes in reading order: the
    caption task that first makes the model read the image), grounding (Qwen JSON boxes),
    counting (a digit), spatial yes/no, and format following with *other* tag names (stage 2's
    ``instruct`` and ``multipart`` kinds name one GRIT tag at most). Some prompts start with
    "Question: " as GRIT's do. No example contains two GRIT tags or the GRIT suffix.
    """
    mix = mix or TASK_MIX
    kinds, weights = list(mix), list(mix.values())
    out = []
    for _ in range(n):
        scene = _random_scene(rng)
        kind = rng.choices(kinds, weights)[0]
        prompt, answer = _task(rng, scene, kind)
        if kind in ("count", "spatial", "format", "instruct", "multipart") and rng.random() < 0.3:
            prompt = "Question: " + prompt
        image = world.render(scene) if images else None
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}
        ]
        out.append(
            {
                "image": image,
                "prompt": prompt,
                "answer": answer,
                "kind": kind,
                "messages": messages,
                "scene": scene,
            }
        )
    return out


def collate(processor: Any, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Tokenise chat examples into a right-padded batch; labels are -100 except the answer.

    The prompt goes through the processor (which expands the image into 16 pad tokens);
    the answer and ``<|im_end|>`` are appended as ids, so training sees exactly the token
    boundary that generation after ``<|im_start|>assistant\\n`` produces.
    """
    tok = processor.tokenizer
    rows, images = [], []
    for ex in examples:
        text = processor.apply_chat_template(ex["messages"], add_generation_prompt=True)
        enc = processor(text=[text], images=[ex["image"]], return_tensors="pt")
        prompt_ids = enc["input_ids"][0].tolist()
        answer_ids = tok(ex["answer"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        rows.append((prompt_ids, answer_ids, enc["mm_token_type_ids"][0].tolist()))
        images.append(enc)
    length = max(len(p) + len(a) for p, a, _ in rows)
    batch = {
        k: torch.full((len(rows), length), v, dtype=torch.long)
        for k, v in (("input_ids", tok.pad_token_id), ("labels", -100), ("mm_token_type_ids", 0))
    }
    batch["attention_mask"] = torch.zeros((len(rows), length), dtype=torch.long)
    for i, (p, a, mm) in enumerate(rows):
        n = len(p) + len(a)
        batch["input_ids"][i, :n] = torch.tensor(p + a)
        batch["labels"][i, len(p) : n] = torch.tensor(a)
        batch["mm_token_type_ids"][i, : len(p)] = torch.tensor(mm)
        batch["attention_mask"][i, :n] = 1
    batch["pixel_values"] = torch.cat([e["pixel_values"] for e in images])
    batch["image_grid_thw"] = torch.cat([e["image_grid_thw"] for e in images])
    return batch
