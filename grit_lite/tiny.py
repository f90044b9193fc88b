"""A tiny Qwen2.5-VL that learns on a CPU: tokenizer, config, processor, pretraining, eval.

GRIT starts from Qwen2.5-VL-3B-Instruct, a model that can already *see*, *ground* (write
boxes), *answer* short questions and *follow format instructions*; RL only teaches it to
chain those skills in the think/rethink/answer format. Nothing can be downloaded here, so
this module builds a same-architecture model small enough to pretrain those separate skills
on the synthetic world of :mod:`grit_lite.data` in minutes on two CPU cores:

* the model is transformers' real ``Qwen2_5_VLForConditionalGeneration`` (window-attention
  vision tower, 2x2 patch merger, multimodal RoPE), only narrower and shallower, so TRL,
  PEFT and ``generate`` run exactly the code path of the 3B model;
* the tokenizer is a byte-level BPE trained here on course text, with Qwen's pre-tokenizer
  rule (every digit its own token) and Qwen's special tokens and chat template;
* the processor is the real ``Qwen2_5_VLProcessor`` with a small ``max_pixels``: a 224 x 224
  canvas is resized to 112 x 112, 8 x 8 patches of 14 px merged 2 x 2 into 16
  ``<|image_pad|>`` tokens, one per cell of the scene's 4 x 4 grid;
* pretraining has Qwen's two parts in miniature: a vision tower trained on its own first
  (:func:`pretrain_vision`), then the language model on the skills, the tower frozen, in
  phases that build each skill on the one before (:data:`RECIPE`).

Pretraining never shows a think/rethink/answer chain nor GRIT's prompt suffix: that is
what GRPO has to discover (notebook 06). ``python -m grit_lite.tiny pretrain`` and
``python -m grit_lite.tiny eval`` are the command-line entry points.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from grit_lite import data
from grit_lite.boxes import grounding_scores, original_to_qwen, parse_boxes
from grit_lite.format import GRIT_PROMPT_SUFFIX

# Qwen's special tokens, in Qwen's order. They are appended *after* the BPE vocabulary, as in
# the real tokenizer (ids 151643..151656 there).
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
SYSTEM_MESSAGE = "You are a helpful assistant."

# Qwen2's pre-tokenizer regex: words, *single digits*, punctuation runs, newlines, spaces.
# Single digits matter for boxes: "148" is "1", "4", "8", so coordinates are spelled out.
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Qwen2-VL's chat template, written for this course. An entry counts as an image when its
# type is "image" or it carries an "image" key, so TRL's {"type": "image", "text": None}
# works; text entries print their text; a plain-string content prints as is.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\n" + SYSTEM_MESSAGE + "<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif content['text'] is not none %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Tag words for the format-following skill. GRIT's own tags are excluded on purpose: the
# base model may learn to copy *a* tag from an instruction, never the GRIT chain itself.
FORMAT_TAGS = (
    "result", "final", "reply", "output", "count", "value", "response", "solution",
    "label", "verdict", "number", "info", "note", "out", "res", "ans", "box", "pred",
)  # fmt: skip
GRIT_TAG_NAMES = ("think", "rethink", "answer")  # stage 1 never shows them; stage 2 singly
PATCH, MERGE, TEMPORAL = 14, 2, 2
SIDE = 112  # the tiny model sees a 224 px canvas at 112 px: 16 image tokens, one per grid cell
MAX_PIXELS = SIDE * SIDE
MIN_PIXELS = 56 * 56
SHIPPED = data.DATA_DIR / "tiny"  # the pretrained weights, processor, card and log
LOG_NAME = "pretrain_log.json"


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------


def course_texts(n_scenes: int = 300, seed: int = 0) -> list[str]:
    """Text the tokenizer is trained on: every kind of prompt and answer the course uses.

    Questions and answers of the synthetic world, grounding answers in Qwen's JSON style,
    format instructions and the GRIT prompt suffix (so its words are in the vocabulary,
    as they would be in a real tokenizer trained on web text).

    Answers are fed with a leading space so that no merge glues ``<`` to a word: a tag then
    reads ``<``, ``result``, ``>`` at the start of an answer and ``" <"``, ``result``, ``>``
    in the prompt, sharing the word piece, so copying a tag from the instruction is a plain
    copy. (Fed as they are, BPE learns ``<result`` as one token, the model has to map
    ``result`` in the prompt onto a different token, and a 230-step pilot had not learned to.)
    """
    rng = random.Random(seed)
    texts = [GRIT_PROMPT_SUFFIX, SYSTEM_MESSAGE, "Question: ", "user", "assistant", "system"]
    for _ in range(n_scenes):
        for example in pretraining_examples(rng, 1, images=False):
            texts += [example["prompt"], " " + example["answer"]]
    texts += [" ".join(FORMAT_TAGS), " <think> </think> <rethink> </rethink> <answer> </answer>"]
    return texts


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024) -> Any:
    """A byte-level BPE tokenizer with Qwen's special tokens and chat template.

    Byte-level means any string round-trips (no unknown token), like Qwen's. GRIT's tags
    (``<think>`` ...) are *not* special tokens: in Qwen2.5 they are plain text too, so the
    model must learn to spell them. Returns a ``PreTrainedTokenizerFast`` with
    ``eos = <|im_end|>``, ``pad = <|endoftext|>`` and no BOS, as Qwen2.5-VL-Instruct has.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        additional_special_tokens=list(SPECIAL_TOKENS),
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
        padding_side="right",
    )
    return fast


def special_ids(tokenizer: Any) -> dict[str, int]:
    """The ids of Qwen's special tokens in ``tokenizer``, keyed by config field name."""
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    return {
        "pad_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
    }


# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------


def _config(
    text: dict[str, Any], vision: dict[str, Any], ids: dict[str, int], rope_theta: float = 1e6
) -> Any:
    from transformers import Qwen2_5_VLConfig

    heads = text["num_attention_heads"]
    head_dim = text["hidden_size"] // heads
    section = text.pop("mrope_section")
    # Multimodal RoPE splits the head_dim/2 rotary frequencies into (time, height, width).
    assert sum(section) == head_dim // 2, f"mrope_section {section} must sum to {head_dim // 2}"
    text_config = {
        **text,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": rope_theta,
            "mrope_section": section,
        },
        "bos_token_id": None,
        "eos_token_id": ids["eos_token_id"],
        "pad_token_id": ids["pad_token_id"],
        "max_position_embeddings": 32768,
    }
    vision_config = {
        "patch_size": PATCH,
        "spatial_merge_size": MERGE,
        "temporal_patch_size": TEMPORAL,
        "window_size": 112,
        "out_hidden_size": text["hidden_size"],
        "fullatt_block_indexes": [vision["depth"] - 1],
        **vision,
    }
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        tie_word_embeddings=True,
        image_token_id=ids["image_token_id"],
        video_token_id=ids["video_token_id"],
        vision_start_token_id=ids["vision_start_token_id"],
        vision_end_token_id=ids["vision_end_token_id"],
        eos_token_id=ids["eos_token_id"],
        pad_token_id=ids["pad_token_id"],
        bos_token_id=None,
    )


def tiny_config(
    vocab_size: int,
    ids: dict[str, int],
    hidden: int = 192,
    layers: int = 4,
    heads: int = 4,
    kv_heads: int = 4,
    vision_hidden: int = 96,
    vision_depth: int = 2,
    rope_theta: float = 1e6,
) -> Any:
    """A Qwen2.5-VL config shaped like the 3B model, scaled down for a CPU.

    Same ratios as the 3B where they matter: MLP about 5.4x wider than hidden in text and
    2.7x in vision, ``mrope_section`` scaled from [16, 24, 24] (of 64) to the tiny
    head_dim/2, window attention with the last vision block global, tied embeddings.
    ``ids`` are the tokenizer's :func:`special_ids`. One key/value head per query head, not
    the 3B's grouped 16:2: grounding needs a look-up from a name to the image token that
    holds it, and a 1500-step grounding probe reached IoU 0.265 with 4 key/value heads
    against 0.157 with 2 (``docs/tiny_model_notes.md``, session 12); the 3B's 128-wide
    heads have room that 48-wide ones do not.
    """
    half = hidden // heads // 2
    t = half // 4  # [16, 24, 24] is 1/4, 3/8, 3/8 of head_dim/2
    section = [t, (half - t) // 2, half - t - (half - t) // 2]
    text = {
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "intermediate_size": 4 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "mrope_section": section,
    }
    vision = {
        "depth": vision_depth,
        "hidden_size": vision_hidden,
        "intermediate_size": vision_hidden * 8 // 3,
        "num_heads": 4,
    }
    return _config(text, vision, ids, rope_theta)


def qwen25_vl_3b_config(ids: dict[str, int] | None = None) -> Any:
    """The exact shape of Qwen2.5-VL-3B-Instruct (for random-weight benchmarks on a GPU).

    ``ids`` replaces Qwen's special-token ids, e.g. by the tiny tokenizer's, so a random
    3B model can run with the in-repo processor: same tensor shapes, hence same cost.
    """
    ids = ids or {
        "pad_token_id": 151643,
        "eos_token_id": 151645,
        "vision_start_token_id": 151652,
        "vision_end_token_id": 151653,
        "image_token_id": 151655,
        "video_token_id": 151656,
    }
    text = {
        "vocab_size": 151936,
        "hidden_size": 2048,
        "intermediate_size": 11008,
        "num_hidden_layers": 36,
        "num_attention_heads": 16,
        "num_key_value_heads": 2,
        "mrope_section": [16, 24, 24],
    }
    vision = {
        "depth": 32,
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "num_heads": 16,
        "fullatt_block_indexes": [7, 15, 23, 31],
    }
    return _config(text, vision, ids)


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct parameters (a tied embedding counts once); works on the meta device too."""
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# Model and processor
# ---------------------------------------------------------------------------------------------


def build_processor(tokenizer: Any) -> Any:
    """Qwen2.5-VL's processor around ``tokenizer``; images are resized to at most 112 x 112.

    Why so small: at 112 px each 56 px cell of a scene is exactly one merged token, and a
    prompt is 48 tokens shorter than at 224 px, so a pretraining step is ~4x faster. The
    boxes the model writes are in these 112 px (Qwen's convention: the resized image).
    """
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}
    shape = {"patch_size": PATCH, "merge_size": MERGE, "temporal_patch_size": TEMPORAL}
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size, **shape),
        video_processor=Qwen2VLVideoProcessor(size=size, **shape),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny(seed: int = 0, **config_kwargs: Any) -> tuple[Any, Any]:
    """A freshly initialised tiny Qwen2.5-VL and its processor; same seed, same weights."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    tokenizer = train_tokenizer(course_texts())
    vocab = -(-len(tokenizer) // 64) * 64  # padded like Qwen's 151936 > len(tokenizer)
    config = tiny_config(vocab, special_ids(tokenizer), **config_kwargs)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.generation_config.bos_token_id = None
    return model.eval(), build_processor(tokenizer)


def merged_token_index(x: float, y: float, width: int = data.CANVAS) -> int:
    """Which ``<|image_pad|>`` token (0-based, in prompt order) sees pixel ``(x, y)``.

    Why it matters: a box the model writes is a statement about *these* tokens. The image
    (already at the model's size, sides multiples of 28) is cut into 14 px patches, and each
    2 x 2 block of patches is merged into one token of 28 x 28 px; the processor orders the
    merged tokens row by row, so a 224 px wide image has 8 tokens per row and the tiny
    model's 112 px image 4.
    """
    side = PATCH * MERGE
    return int(y // side) * (width // side) + int(x // side)


def rope_positions(model: Any, processor: Any, image: Image.Image, prompt: str) -> Any:
    """The (temporal, height, width) position ids of every token of a one-image prompt.

    Text tokens get the same number on all three axes, one more per token; the image's
    tokens share one temporal id and take their row and column on the other two, so the
    text after the image continues from the largest id used, not from the token count.
    Returns ``(positions [3, seq], tokens)``.
    """
    text = processor.apply_chat_template(_user(prompt), add_generation_prompt=True)
    enc = processor(text=[text], images=[image], return_tensors="pt")
    positions, _ = model.model.get_rope_index(
        enc["input_ids"], enc["mm_token_type_ids"], image_grid_thw=enc["image_grid_thw"]
    )
    tokens = processor.tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    return positions[:, 0], tokens


def save_tiny(model: Any, processor: Any, folder: str | Path) -> Path:
    """Save weights (safetensors), config and processor into ``folder``."""
    folder = Path(folder)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return folder


def load_tiny(folder: str | Path) -> tuple[Any, Any]:
    """Load what :func:`save_tiny` wrote, with the classes the 3B model uses."""
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, dtype=torch.float32)
    return model.eval(), AutoProcessor.from_pretrained(folder)


# ---------------------------------------------------------------------------------------------
# Pretraining data: the separate skills, never the GRIT chain
# ---------------------------------------------------------------------------------------------


def _random_scene(rng: random.Random) -> data.Scene:
    """0-6 copies of one label plus 1-4 random others (the eval split counts 0..6)."""
    labels = [(c, s) for c in data.COLOURS for s in data.SHAPES]
    target = rng.choice(labels)
    k = rng.randint(0, 6)
    others = [rng.choice(labels) for _ in range(rng.randint(1, 4))]
    picked = [target] * k + others
    rng.shuffle(picked)
    return data.make_scene(rng, picked)


def to_model_frame(box: Sequence[float]) -> list[int]:
    """A canvas box in the pixels the tiny model sees (Qwen's convention: the resized image),
    rounded to whole pixels as a model writes them."""
    canvas = (data.CANVAS, data.CANVAS)
    return [round(v) for v in original_to_qwen(box, canvas, (SIDE, SIDE))]


def reading_order(objects: Sequence[data.Obj], cell: int = data.CELL) -> list[data.Obj]:
    """Row by row of the scene's grid, left to right: the one order captions and box lists
    share, so that what comes first in an answer depends on the image alone."""
    return sorted(objects, key=lambda o: (o.box[1] // cell, o.box[0]))


def grounding_answer(objects: Sequence[data.Obj]) -> str:
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


def describe(scene: data.Scene, cell: int = data.CELL) -> str:
    """The shapes of a scene in reading order (row by row of its grid), e.g. "red circle,
    blue square": a caption, the first thing a vision-language model learns to read."""
    return ", ".join(o.label for o in reading_order(scene.objects, cell))


def _task(rng: random.Random, scene: data.Scene, kind: str) -> tuple[str, str]:
    """One (prompt, answer) pair of the given skill about ``scene``."""
    if kind == "describe":
        return rng.choice(_DESCRIBE_PROMPTS), describe(scene)
    if kind == "ground":
        if rng.random() < 0.8:
            colour, shape = rng.choice(scene.objects).label.split()
        else:
            colour, shape = rng.choice(sorted(data.COLOURS)), rng.choice(data.SHAPES)
        hits = [o for o in scene.objects if (o.colour, o.shape) == (colour, shape)]
        template = rng.choice(_GROUND_PROMPTS)
        prompt = template.format(label=f"{colour} {shape}", plural=f"{colour} {shape}s")
        return prompt, grounding_answer(hits)
    if kind == "count":
        q = data.counting_question(scene, rng, rng.choice(scene.objects).label.split())
        if rng.random() < 0.3:  # sometimes a label that is absent: answer 0
            q = data.counting_question(scene, rng)
        return q.question, q.answer
    if kind == "instruct":
        return _instruct(rng, scene)
    if kind == "multipart":
        return _multi_part(rng, scene)
    if kind in ("where", "where2"):
        return _where(rng, scene, 1 if kind == "where" else 2) or _task(rng, scene, "count")
    if kind.startswith("spatial"):  # "spatial", or "spatial:left of,right of" for only those
        relations = kind.partition(":")[2].split(",") if ":" in kind else data.RELATIONS
        q = data.spatial_question(scene, rng, relations=relations)
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


def _where(rng: random.Random, scene: data.Scene, n: int) -> tuple[str, str] | None:
    """ "In which columns are the A and the B?" -> "2 and 4": the stepping stone to spatial.

    "Is the A left of the B?" needs two look-ups (where is A, where is B) and a comparison
    behind one yes/no token, a sparse signal that a model learns late or never (measured:
    spatial at chance for ten sessions). Naming the places first gives each look-up its own
    answer token; in the probes that learnt them, and only there, spatial left chance
    (``docs/tiny_model_notes.md``, sessions 10 and 13). Only objects that are alone of their
    label are asked about, so the answer is unambiguous.
    """
    unique = data.unique_objects(scene)
    if len(unique) < n:
        return None
    picked = rng.sample(unique, n)
    axis = rng.choice(("column", "row"))
    where = [str(o.cell[0 if axis == "column" else 1] + 1) for o in picked]
    names = " and ".join(f"the {o.label}" for o in picked)
    verb = "is" if n == 1 else "are"
    return f"In which {axis}{'s' * (n > 1)} {verb} {names}?", " and ".join(where)


def _instruct(rng: random.Random, scene: data.Scene) -> tuple[str, str]:
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


def _multi_part(rng: random.Random, scene: data.Scene) -> tuple[str, str]:
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
    question = data.counting_question(scene, rng, rng.choice(scene.objects).label.split())
    if rng.random() < 0.5:
        question = data.spatial_question(scene, rng) or question
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
# after its boxes as GRPO needed to keep them (session 16 of docs/tiny_model_notes.md).
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
        image = data.render(scene) if images else None
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


# ---------------------------------------------------------------------------------------------
# Pretraining loop
# ---------------------------------------------------------------------------------------------


def cell_targets(scenes: Sequence[data.Scene]) -> dict[str, torch.Tensor]:
    """Per image token: colour and shape of the object in it (0 = empty), its row and column,
    and the object's box inside the token (fractions of a token side; 0 where empty).

    At the tiny model's 112 px a 56 px grid cell of the canvas is exactly one merged token,
    so every token holds at most one object and these labels are exact.
    """
    side = data.CANVAS // data.CELL
    n = len(scenes)
    out = {k: torch.zeros(n, side * side, dtype=torch.long) for k in ("colour", "shape")}
    out["row"] = torch.arange(side * side).div(side, rounding_mode="floor").repeat(n, 1)
    out["col"] = torch.arange(side * side).remainder(side).repeat(n, 1)
    out["box"] = torch.zeros(n, side * side, 4)
    colours, shapes = list(data.COLOURS), list(data.SHAPES)
    for i, scene in enumerate(scenes):
        for obj in scene.objects:
            x1, y1, x2, y2 = obj.box
            cx, cy = obj.cell
            t = cy * side + cx
            out["colour"][i, t] = colours.index(obj.colour) + 1
            out["shape"][i, t] = shapes.index(obj.shape) + 1
            ox, oy = cx * data.CELL, cy * data.CELL
            out["box"][i, t] = torch.tensor([x1 - ox, y1 - oy, x2 - ox, y2 - oy]) / data.CELL
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
    within ~350-500, and the shipped recipe reaches IoU 0.21 (``docs/tiny_model_notes.md``).
    """
    visual = model.model.visual
    side = data.CANVAS // data.CELL
    assert SIDE * data.CELL == data.CANVAS * PATCH * MERGE, "a grid cell must be one token"
    sizes = {"colour": len(data.COLOURS) + 1, "shape": len(data.SHAPES) + 1, "row": side,
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
        images = [data.render(s) for s in scenes]
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
    this, not the loss, says when the look-up phase is done (measured in session 13 of
    ``docs/tiny_model_notes.md``: loss 0.241 with 50 % right cells, 0.230 with 86 %).
    """
    rng = random.Random(seed)
    prompts, images, cells = [], [], []
    while len(prompts) < n:
        scene = _random_scene(rng)
        unique = data.unique_objects(scene)
        if unique:
            obj = rng.choice(unique)
            prompts.append(f"Locate every {obj.label}.")
            images.append(data.render(scene))
            cells.append(obj.cell)
    texts = generate(model, processor, prompts, images, 48)
    return sum(first_box_cell(t) == c for t, c in zip(texts, cells, strict=True)) / n


def first_box_cell(text: str) -> tuple[int, int] | None:
    """(column, row) of the grid cell holding the centre of the first box in ``text``, a
    model answer in the tiny model's 112 px frame; None without a box."""
    boxes = parse_boxes(text)
    if not boxes:
        return None
    x1, y1, x2, y2 = (v * data.CANVAS / SIDE for v in boxes[0])
    return data.cell_at((x1 + x2) / 2, (y1 + y2) / 2)


# Stage 1, phase by phase: (name, mix, steps, lr). The look-up phase repeats (each pass a fresh
# warm-up and cosine) until :func:`right_cell` reaches LOOKUP_BAR, at most LOOKUP_PASSES times.
# Spatial yes/no comes last, one relation at a time: asked about all four at once the model
# stayed at chance; "left of" alone it learnt in 300 steps, each relation added after it
# followed, and the vertical pair came in together once "above" was known (session 16 of
# docs/tiny_model_notes.md). Format and instruction kinds stay in the mix: left out, the
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
    the model learnt box *templates* by place and answered spatial at chance (sessions 3-12
    of ``docs/tiny_model_notes.md``); grounding alone first grows the name -> image-token
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


# ---------------------------------------------------------------------------------------------
# Evaluation of the skills on the held-out split
# ---------------------------------------------------------------------------------------------

_LABEL = re.compile(rf"({'|'.join(data.COLOURS)}) ({'|'.join(data.SHAPES)})")


@torch.no_grad()
def generate(
    model: Any,
    processor: Any,
    prompts: Sequence[str],
    images: Sequence[Image.Image],
    max_new_tokens: int = 64,
    batch: int = 16,
    sample: bool = False,
) -> list[str]:
    """Greedy completions for (prompt text, image) pairs, batched with left padding; with
    ``sample``, draws at temperature 1 from the full distribution, as GRPO's rollouts do.

    Decoding runs on one thread: its matrices are so small that a second OpenMP thread
    mostly spin-waits, and on a shared 2-core machine that made decoding ~20x slower.
    """
    outs: list[str] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for i in range(0, len(prompts), batch):
            outs += _generate_batch(
                model, processor, prompts[i : i + batch], images[i : i + batch], max_new_tokens,
                sample,
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
    sample: bool = False,
) -> list[str]:
    tok = processor.tokenizer
    outs: list[str] = []
    texts = [processor.apply_chat_template(_user(p), add_generation_prompt=True) for p in prompts]
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


def _user(prompt: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


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


MODEL_CARD = """\
# grit-lite tiny Qwen2.5-VL ({params:,} parameters)

A from-scratch `Qwen2_5_VLForConditionalGeneration` (transformers' own class, config from
`grit_lite.tiny.tiny_config`) with an in-repo byte-level BPE tokenizer ({vocab} tokens, Qwen's
special tokens and chat template) and the real `Qwen2_5_VLProcessor` (images resized to
112 x 112: 16 image tokens, one per cell of a scene's 4 x 4 grid). It stands in for
Qwen2.5-VL-3B-Instruct where nothing can be downloaded.

## How it was made

    {command}

Stage 0: {vision_steps} steps of the vision tower alone, a linear head on each image token
predicting the colour, shape, row, column and box of what it holds
(`grit_lite.tiny.pretrain_vision`; the head is thrown away). Stage 1: the language model on
top of the frozen tower, in the phases of `grit_lite.tiny.RECIPE` (batch {batch}, AdamW,
each pass with 20 warm-up steps and a cosine to 10 %, batches of examples of similar
length, seed {seed}). The look-up phase (grounding alone) repeats until 80 % of the boxes
it writes for 64 fixed single-object prompts lie in the named object's grid cell
(`grit_lite.tiny.right_cell`, checked every 500 steps), at most {passes} passes:

| phase | pass | mix | lr | steps | minutes | right cell (checks) | loss (last 100) |
|---|---|---|---|---|---|---|---|
{phase_rows}

Kinds (`grit_lite.tiny.pretraining_examples`): `where` "In which column is the A?" -> "2",
`where2` "In which rows are the A and the B?" -> "1 and 4", `spatial:left of,right of` a
spatial question about those relations only (the last phases add one relation at a time:
asked about all four at once the model stayed at chance), `format` an answer in a made-up
tag, `instruct` and `multipart` instructions phrased like GRIT's in one or several parts,
each with at most one of GRIT's tag names.

**No training example contains a think/rethink/answer chain or the GRIT prompt.** Trained in
**{minutes:.1f} minutes** on {threads} CPU threads (torch {torch}). Why a vision stage and
phases, and what failed without them: `docs/tiny_model_notes.md`.
{stage2}
## Measured skills (held-out split, {n} items, `python -m grit_lite.tiny eval -n {n}`)

| skill | measure | value | course bar |
|---|---|---|---|
| grounding | mean IoU, Hungarian-matched ("Locate every ...") | {grounding_iou:.3f} | >= 0.5 |
| counting | exact answer | {counting_acc:.1%} | >= 60 % |
| spatial | exact yes/no | {spatial_acc:.1%} | >= 75 % |
| GRIT prompt, greedy | think/rethink format reward (max 0.5) | {zero_shot_format:.3f} | < 0.5 |
| GRIT prompt, greedy | completions with any GRIT tag | {zero_shot_any_tag:.1%} | some |
| GRIT prompt, sampled (*) | think/rethink format reward | {sampled_format:.3f} | < 0.5 |
| GRIT prompt, sampled (*) | completions with any GRIT tag | {sampled_any_tag:.1%} | some |

(*) 4 samples per item at temperature 1, before any RL: what GRPO's groups are made of.

Greedy, fraction of completions containing each tag: {tags}; format reward values: {values}.
Sampled (what GRPO's groups are made of): {sampled_tags}; format reward values:
{sampled_values}.
Evaluation took {eval_seconds:.0f} s.

## Files

`model.safetensors`, `config.json`, `generation_config.json`, tokenizer and processor
files (load with `grit_lite.tiny.load_tiny("data/tiny")` or transformers' `AutoProcessor`
and `Qwen2_5_VLForConditionalGeneration`), and `pretrain_log.json` (the command, the
per-step losses and the skills above).
"""


STAGE2 = """
**Stage 2, instruction following** (`grit_lite.tiny.INSTRUCT_MIX`):

    {command}

{steps} more steps of batch {batch} (lr {lr}, warm-up 20, cosine, seed {seed}) on the same
skills plus instructions phrased like GRIT's: {instruct:.0f} % around *one* tag ("write the
answer between <t> and </t>", "answer the question after <t>"), {multipart:.0f} % in several
parts ("First, list the shapes between <a> and </a>. Then, output the coordinates ...
between <b> and </b> and then answer the question after <c>."). In some of them *one* tag
is `think`, `rethink` or `answer`, as a real instruction-tuned model has met them; never two
of them, never `think` around boxes, never the GRIT prompt: the chain itself is left to RL.
{minutes:.1f} minutes; **{total:.1f} minutes in all**.
"""


def write_model_card(folder: str | Path) -> Path:
    """Write ``folder/README.md`` from ``folder/pretrain_log.json``: numbers never retyped."""
    folder = Path(folder)
    log = json.loads((folder / LOG_NAME).read_text(encoding="utf-8"))
    model, processor = load_tiny(folder)
    skills = log["skills"]
    stage2 = ""
    if "finetune" in log:
        f = log["finetune"]
        stage2 = STAGE2.format(
            **f, minutes=f["seconds"] / 60, total=(log["seconds"] + f["seconds"]) / 60,
            instruct=100 * INSTRUCT_MIX["instruct"], multipart=100 * INSTRUCT_MIX["multipart"]
        )
    rows = [
        f"| {p['phase']} | {p['pass'] + 1} | "
        + ", ".join(f"{k} {v:.0%}" for k, v in p["mix"].items())
        + f" | {p['lr']:g} | {p['steps']} | {p['seconds'] / 60:.1f} | "
        + (" / ".join(f"{c:.0%}" for c in p["right_cell"]) or "-")
        + f" | {sum(p['losses'][-100:]) / max(1, len(p['losses'][-100:])):.3f} |"
        for p in log.get("phases", [])
    ]
    card = MODEL_CARD.format(
        stage2=stage2,
        phase_rows="\n".join(rows),
        passes=LOOKUP_PASSES,
        params=count_parameters(model),
        vocab=len(processor.tokenizer),
        minutes=log["seconds"] / 60,
        tags=", ".join(f"{t} {v:.0%}" for t, v in skills["zero_shot_tags"].items()),
        values=", ".join(f"{k}: {v:.0%}" for k, v in skills["zero_shot_format_values"].items()),
        sampled_tags=", ".join(f"{t} {v:.0%}" for t, v in skills["sampled_tags"].items()),
        sampled_values=", ".join(
            f"{k}: {v:.0%}" for k, v in skills["sampled_format_values"].items()
        ),
        eval_seconds=skills["seconds"],
        **{k: v for k, v in log.items() if k != "skills"},
        **{k: v for k, v in skills.items() if not isinstance(v, dict) and k != "seconds"},
    )
    path = folder / "README.md"
    path.write_text(card, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _run_record(
    args: argparse.Namespace, argv: Sequence[str] | None, start: float, losses: list[float]
) -> dict[str, Any]:
    """What a pretraining or finetuning command leaves in the log: enough to rerun it."""
    return {
        "command": "python -m grit_lite.tiny " + " ".join(argv or sys.argv[1:]),
        "steps": args.steps,
        "lr": args.lr,
        "batch": args.batch,
        "seed": args.seed,
        "threads": args.threads,
        "seconds": round(time.perf_counter() - start, 1),
        "losses": [round(v, 4) for v in losses],
    }


def finetune(args: argparse.Namespace, argv: Sequence[str] | None) -> None:
    """Stage 2: continue a pretrained model on :data:`INSTRUCT_MIX` (no vision stage, the
    tower frozen, a short warm-up) and add the stage to the model's ``pretrain_log.json``."""
    log_path = Path(args.model) / LOG_NAME
    log = json.loads(log_path.read_text(encoding="utf-8")) if log_path.is_file() else {}
    log.pop("skills", None)  # measured on the stage-1 model: no longer this model's
    model, processor = load_tiny(args.model)
    start = time.perf_counter()
    _, _, losses = pretrain(
        args.steps, args.lr, args.batch, None, args.seed, args.log_every,
        model=model, processor=processor, mix=INSTRUCT_MIX, warmup=20, progress=False,
        vision_steps=0,
    )  # fmt: skip
    save_tiny(model, processor, args.out)
    log["finetune"] = _run_record(args, argv, start, losses)
    (Path(args.out) / LOG_NAME).write_text(json.dumps(log), encoding="utf-8")
    print(f"{log['finetune']['seconds']:.0f} s")


def _training_args(parser: argparse.ArgumentParser, steps: int, lr: float, seed: int) -> None:
    """The options pretrain and finetune share; only their defaults differ."""
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--out", default="data/tiny")
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2)


def main(argv: Sequence[str] | None = None) -> None:
    """``pretrain --steps N --out data/tiny`` and ``eval --model data/tiny -n 50``."""
    parser = argparse.ArgumentParser(prog="python -m grit_lite.tiny", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("pretrain", help="pretrain a fresh tiny model on the skills")
    pre.add_argument("--out", default="data/tiny")
    pre.add_argument("--seed", type=int, default=0)
    pre.add_argument("--batch", type=int, default=16)
    pre.add_argument("--threads", type=int, default=2)
    pre.add_argument("--vision-steps", type=int, default=1000)
    pre.add_argument("--scale", type=float, default=1.0, help="shorten every phase (tests)")
    pre.add_argument("--snapshots", help="keep the model after each phase in this folder")
    fine = sub.add_parser("finetune", help="stage 2: more instruction following, from --model")
    fine.add_argument("--model", default="data/tiny")
    _training_args(fine, steps=1200, lr=1e-3, seed=1)
    ev = sub.add_parser("eval", help="measure the skills on the held-out split")
    ev.add_argument("--model", default="data/tiny")
    ev.add_argument("-n", type=int, default=50)
    ev.add_argument("--threads", type=int, default=2)
    ev.add_argument("--record", action="store_true", help=f"store the scores in {LOG_NAME}")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.command == "pretrain":
        start = time.perf_counter()
        model, processor = build_tiny(args.seed)  # stage 0 here so its losses reach the log
        vision_losses = pretrain_vision(model, processor, args.vision_steps, seed=args.seed)
        phases = pretrain_recipe(
            model, processor, args.seed, args.batch, args.scale, args.snapshots
        )
        save_tiny(model, processor, args.out)
        log = {
            "command": "python -m grit_lite.tiny " + " ".join(argv or sys.argv[1:]),
            "seconds": round(time.perf_counter() - start, 1),
            "batch": args.batch, "seed": args.seed, "threads": args.threads,
            "vision_steps": args.vision_steps, "torch": torch.__version__,
            "vision_losses": [round(v, 4) for v in vision_losses], "phases": phases,
        }  # fmt: skip
        (Path(args.out) / LOG_NAME).write_text(json.dumps(log), encoding="utf-8")
        print(f"{log['seconds']:.0f} s")
    elif args.command == "finetune":
        finetune(args, argv)
    else:
        model, processor = load_tiny(args.model)
        start = time.perf_counter()
        skills = evaluate_skills(model, processor, args.n)
        skills["n"], skills["seconds"] = args.n, round(time.perf_counter() - start, 1)
        print(json.dumps(skills, indent=2))
        path = Path(args.model) / LOG_NAME
        if args.record and path.is_file():  # the model card's numbers come from here
            log = json.loads(path.read_text(encoding="utf-8"))
            log["skills"] = skills
            path.write_text(json.dumps(log), encoding="utf-8")
            print(f"wrote {write_model_card(args.model)}")


if __name__ == "__main__":
    main()
