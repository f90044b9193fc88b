"""The tiny model's tokenizer: a byte-level BPE trained on course text, in Qwen's image.

Qwen's pre-tokenizer rule (every digit its own token, so coordinates are spelled out), Qwen's
special tokens after the BPE vocabulary, and a Qwen2-VL chat template, so the processor and
TRL treat it like the 3B model's tokenizer.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from grit_lite.format import GRIT_PROMPT_SUFFIX
from grit_lite.tiny.tasks import FORMAT_TAGS, pretraining_examples

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
