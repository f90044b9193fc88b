"""GRIT's rewards, written as TRL reward functions.

GRPO-GR scores every sampled completion with the *sum* of six rule-based rewards (max
4.1 in total). Each is a plain function with TRL's reward-function signature, so the list
:data:`GRIT_REWARDS` goes unchanged into ``GRPOTrainer(reward_funcs=GRIT_REWARDS)``::

    reward(completions, **columns) -> list[float]

TRL 1.16 calls it as ``fn(prompts=..., completions=..., completion_ids=..., **columns,
trainer_state=..., log_extra=..., log_metric=...)``: ``completions`` are strings, or
conversational ``[{"role": "assistant", "content": ...}]`` lists for chat datasets;
``completion_ids`` are the completions' token ids (lists of ints); every other dataset
column (``answer``, ``dataset``, ``question``, ...) arrives as one list with a value per
completion. Our functions read what they need and ignore the rest; a missing column
means "unknown" (empty answer, no dataset), never a crash. Outside a trainer you may also
pass a single string for a column (``answer="7"``): it is used for every completion.

The preset reproduces the official release, quirks included, because those quirks are
what the published model was trained on, with one exception: the repetition reward is a
graded reading that stays in [0, 0.5], where the released one can go below 0
(:func:`official_repetition_score` keeps it for comparison). Each quirk is explained where
it happens; the ``clean_*`` variants at the end fix three of them. Every function is total:
any text in, a finite value in [0, its max] out.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from grit_lite.format import extract_answer
from grit_lite.judge import Judge, judge_from_env

THINK, THINK_END, RETHINK, RETHINK_END = "<think>", "</think>", "<rethink>", "</rethink>"
ANSWER = "<answer>"

# Four integers separated by commas: a box "x1, y1, x2, y2" in any bracket style, JSON
# included. Matches do not overlap, so "1, 2, 3, 4, 5" is one box; decimals are half-seen:
# in "1.5, 2, 3, 4" the dot is a word boundary, so "5, 2, 3, 4" counts as a box.
BOX_PATTERN = re.compile(r"\b\d+,\s*\d+,\s*\d+,\s*\d+\b")
# What BLEU and the think-content check keep: ASCII letters, digits and whitespace.
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9\s]")
NGRAM = 8  # the repetition reward looks for an 8-gram repeated back to back
PAD_ID = 151643  # Qwen2.5's <|endoftext|>: the released repetition reward cuts ids there

RewardFunc = Callable[..., list[float]]


# ----------------------------------------------------------------------------------------
# Reading TRL's arguments
# ----------------------------------------------------------------------------------------


def completion_text(completion: Any) -> str:
    """The text of one completion, as TRL passes it.

    A string is returned as is. A conversational completion is a list of messages
    ``{"role": "assistant", "content": ...}``; the content is a string or a list of parts
    like ``{"type": "text", "text": ...}`` (multimodal chat format). The text of every
    assistant message (a message without a role counts as one) is concatenated; image
    parts, tool messages and anything unexpected are skipped. ``None`` gives ``""``.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if not isinstance(completion, (list, tuple)):
        return ""
    texts = []
    for message in completion:
        if not isinstance(message, dict) or message.get("role", "assistant") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, (list, tuple)):
            for part in content:
                if isinstance(part, dict) and part.get("type", "text") == "text":
                    text = part.get("text")
                    texts.append(text if isinstance(text, str) else "")
    return "".join(texts)


def column(values: Any, n: int) -> list[str]:
    """A dataset column as ``n`` strings: missing -> ``""`` each, a single string -> repeated.

    ``None`` values become ``""`` and other values ``str(value)`` (an integer answer 7 is
    the answer "7"). A list of the wrong length is a caller bug, so it raises.
    """
    if values is None:
        return [""] * n
    if isinstance(values, str):
        return [values] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"a column has {len(values)} values for {n} completions")
    return ["" if v is None else str(v) for v in values]


def _token_ids(values: Any, n: int) -> list[list[Any] | None]:
    """TRL's ``completion_ids`` as ``n`` lists (tensors converted), or ``None`` each if absent."""
    if values is None or len(values) != n:
        return [None] * n
    return [
        None if ids is None else ids.tolist() if hasattr(ids, "tolist") else list(ids)
        for ids in values
    ]


# ----------------------------------------------------------------------------------------
# The six rewards of the official release, one completion at a time
# ----------------------------------------------------------------------------------------


def answer_format_score(text: str) -> float:
    """0.25 if ``<answer>`` occurs, plus 0.25 if it occurs exactly once (max 0.5).

    Only the opening tag matters: GRIT never asks for ``</answer>``. Two answers keep
    half the reward, so hedging costs 0.25.
    """
    return 0.25 * (ANSWER in text) + 0.25 * (text.count(ANSWER) == 1)


def think_rethink_format_score(text: str) -> float:
    """The official think/rethink format reward for one completion (max 0.5).

    Walk the tags ``<think>``, ``</think>``, ``<rethink>``, ``</rethink>`` in order over a
    remainder that starts as the whole text: a tag found in the remainder scores 1 and
    the remainder becomes the text after the tag's **last** occurrence (a missing tag
    scores 0 and leaves the remainder alone). If all four scored, one more point when the
    think content (after the last ``<think>``, up to the next ``</think>``, stripped) has
    at least 2 characters and, with non-alphanumerics turned into spaces, splitting on
    ``" "`` gives at least 2 pieces. Reward = points / 5 x 0.5.

    Quirks, kept on purpose: (1) jumping to the *last* occurrence means a stray extra tag
    late in the text makes all the later tags "missing" (``<think>`` at the very end scores
    1 point: nothing follows it); (2) splitting on ``" "`` alone means a think part
    ``"two\\ncats"`` is one piece (no bonus) while ``"cat!"`` is two (``"cat "`` splits
    into ``["cat", ""]``).
    """
    points, rest = 0, text
    for tag in (THINK, THINK_END, RETHINK, RETHINK_END):
        if tag in rest:
            points += 1
            rest = rest.rsplit(tag, 1)[1]
    if points == 4:
        think = text.rsplit(THINK, 1)[1].split(THINK_END, 1)[0].strip()
        if len(think) >= 2 and len(_NOT_ALNUM.sub(" ", think).split(" ")) >= 2:
            points += 1
    return points / 5 * 0.5


def _as_count(answer: str) -> int | None:
    """``int(answer)`` as the official code computes it, or ``None`` where that raises.

    We mirror Python's ``int`` exactly, so ``" 7 "``, ``"7\\n"``, ``"+7"``, ``"007"``,
    ``"1_0"`` (10) and non-ASCII digits like ``"٧"`` are counts, while ``"7.0"``,
    ``"seven"`` and ``""`` are not (the official code crashed on those; we give no bonus).
    """
    try:
        return int(answer)
    except ValueError:  # also raised for digit strings beyond Python's int size limit
        return None


def count_boxes(text: str) -> int:
    """Non-overlapping matches of :data:`BOX_PATTERN`: how the rewards count boxes."""
    return len(BOX_PATTERN.findall(text))


def grounded_region_score(text: str, answer: str, dataset: str) -> float:
    """The official grounded-region reward for one completion (max 1.5).

    0 without ``<rethink>``. Otherwise count the boxes before the first ``<rethink>``:
    0.5 if there is at least one, plus 1.0 if the sample is a counting sample
    (``dataset == "tallyqa"``, exactly) and the number of boxes equals ``int(answer)``.

    Quirks: boxes count anywhere before ``<rethink>``, also outside ``<think>``; the
    count bonus also pays for *zero* boxes when the answer is 0 (so it can be 1.0 with no
    grounding at all). Fixed here rather than kept: the official code read the dataset of
    the batch's first sample and crashed on a non-integer answer; we use each sample's
    own dataset, and answers that ``int()`` rejects get no bonus (see :func:`_as_count`).
    """
    if RETHINK not in text:
        return 0.0
    boxes = count_boxes(text.split(RETHINK, 1)[0])
    score = 0.5 if boxes else 0.0
    if dataset == "tallyqa" and boxes == _as_count(answer):
        score += 1.0
    return score


def bleu_tokens(text: str) -> list[str]:
    """Non-(ASCII letter, digit, whitespace) characters -> spaces, lowercase, split."""
    return _NOT_ALNUM.sub(" ", text).lower().split()


def unigram_bleu(hypothesis: list[str], reference: list[str]) -> float:
    """BLEU with unigram weight only: brevity penalty x clipped unigram precision.

    Computed by nltk's ``sentence_bleu(weights=(1, 0, 0, 0))`` as in the official code.
    nltk returns 0 for an empty hypothesis or reference, and warns (loudly, and wrongly
    for weight-0 orders) when a hypothesis has no 2-, 3- or 4-gram overlaps; we silence
    those warnings. nltk is imported here, not at module import: it takes a second.
    """
    from nltk.translate.bleu_score import sentence_bleu

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score = float(sentence_bleu([reference], hypothesis, weights=(1, 0, 0, 0)))
    return min(max(score, 0.0), 1.0)


def answer_bleu_score(text: str, answer: str) -> float:
    """The official answer-BLEU reward for one completion (max 0.1).

    0 without ``<answer>``; otherwise 0.1 x unigram BLEU of *everything after the first*
    ``<answer>`` against the answer. Quirk: the closing tag is part of the prediction,
    ``" 0 </answer>"`` -> ``["0", "answer"]``, so closing the tag halves a one-word
    answer's BLEU (0.05 instead of 0.1). GRIT's models learned not to close it.
    """
    if ANSWER not in text:
        return 0.0
    return 0.1 * unigram_bleu(bleu_tokens(text.split(ANSWER, 1)[1]), bleu_tokens(answer))


def repeated_ngram_fraction(seq: Sequence[Any], n: int = NGRAM) -> float:
    """Fraction of the n-grams of ``seq`` that are immediately followed by themselves.

    Position i counts when ``seq[i:i+n] == seq[i+n:i+2n]``; the denominator is the number
    of n-grams, ``len(seq) - n + 1`` (0.0 when there are none). Since at most
    ``len(seq) - 2n + 1`` positions can count, the fraction is below 1 and a long loop of
    one word tends to 1. Note what this catches: loops whose period divides n (1, 2, 4 or
    8 items) at once, but a 3-word loop only never (its copies are 3 apart, not 8).
    """
    ngrams = len(seq) - n + 1
    return _back_to_back(seq, n) / ngrams if ngrams > 0 else 0.0


def _back_to_back(seq: Sequence[Any], n: int = NGRAM) -> int:
    """Positions i where ``seq[i:i+n]`` is followed at once by itself: the count both
    repetition readings share (they differ only in what they divide it by)."""
    return sum(seq[i : i + n] == seq[i + n : i + 2 * n] for i in range(len(seq) - 2 * n + 1))


def repetition_score(text: str, token_ids: Sequence[Any] | None = None) -> float:
    """0.5 x (1 - f): f is the fraction of 8-grams immediately repeated (max 0.5).

    The reference says only "penalises an 8-gram immediately repeated, on words and on
    token ids; 0.5 for completions shorter than 8 words". We read the special case for
    short texts as the guard for a ratio with no 8-grams in it, so the penalty is that
    ratio (:func:`repeated_ngram_fraction`), taken on whitespace-split words and, when
    TRL passes ``completion_ids``, on token ids; the worse of the two counts. A completion
    without a back-to-back repeat keeps 0.5; one looping on a word drifts towards 0.
    A graded penalty also ranks the completions of a group that all loop, which a
    0-or-0.5 rule would not.
    """
    words = text.split()
    if len(words) < NGRAM:
        return 0.5
    fraction = repeated_ngram_fraction(words)
    if token_ids is not None:
        fraction = max(fraction, repeated_ngram_fraction(list(token_ids)))
    return 0.5 * (1.0 - fraction)


def official_repetition_score(text: str, token_ids: Sequence[Any] | None = None) -> float:
    """The released repetition reward, kept to show why the course departs from it.

    ``(t - (1 - w)) x 0.5``: ``w`` is one minus the fraction of word 8-grams followed at once
    by themselves (over ``n_words - 8`` positions; 1 for up to 8 words), ``t`` the same on token
    ids cut at the first pad id (over ``n_ids - 15`` positions, 1 below 16 ids). A loop
    seen in both words and ids is paid for twice, so the value can go down to -0.5 and a
    completion's sum below 0. Without ``token_ids`` (outside a trainer) ``t`` is 1.
    """
    words = text.split()
    w = 1.0 - _back_to_back(words) / (len(words) - NGRAM) if len(words) > NGRAM else 1.0
    ids = [] if token_ids is None else list(token_ids)
    ids = ids[: ids.index(PAD_ID)] if PAD_ID in ids else ids
    pairs = len(ids) - 2 * NGRAM + 1
    t = 1.0 - _back_to_back(ids) / pairs if pairs > 0 else 1.0
    return (t - (1.0 - w)) * 0.5


def answer_accuracy_score(
    text: str, answer: str, question: str = "", judge: Judge | None = None
) -> float:
    """1.0 if the judge gives the completion's answer any credit (score > 0), else 0.0.

    No ``<answer>``, or an empty one, is no answer: 0.0 without asking the judge. The
    official trainer binarises the LLM judge's [0, 1] score, so partial credit (0.1) pays
    in full. ``judge`` defaults to :func:`grit_lite.judge.judge_from_env` (rules unless
    an LLM judge is configured).
    """
    prediction = extract_answer(text)
    if not prediction:
        return 0.0
    score = (judge or judge_from_env())(question, answer, prediction)
    return 1.0 if score > 0 else 0.0


# ----------------------------------------------------------------------------------------
# The same rewards with TRL's signature
# ----------------------------------------------------------------------------------------


def make_answer_accuracy_reward(judge: Judge | None = None) -> RewardFunc:
    """An accuracy reward bound to ``judge`` (``None``: the environment's judge per call)."""

    def answer_accuracy_reward(
        completions: Sequence[Any], answer: Any = None, question: Any = None, **kwargs: Any
    ) -> list[float]:
        """Judge score binarised: 1.0 for a right answer, else 0.0 (max 1)."""
        n = len(completions)
        chosen = judge or judge_from_env()
        return [
            answer_accuracy_score(completion_text(c), a, q, chosen)
            for c, a, q in zip(completions, column(answer, n), column(question, n), strict=True)
        ]

    return answer_accuracy_reward


answer_accuracy_reward = make_answer_accuracy_reward()


def answer_bleu_reward(
    completions: Sequence[Any], answer: Any = None, **kwargs: Any
) -> list[float]:
    """0.1 x unigram BLEU of the text after ``<answer>`` (max 0.1); :func:`answer_bleu_score`."""
    answers = column(answer, len(completions))
    return [
        answer_bleu_score(completion_text(c), a) for c, a in zip(completions, answers, strict=True)
    ]


def answer_format_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """0.25 for ``<answer>``, 0.25 more if only one (max 0.5); :func:`answer_format_score`."""
    return [answer_format_score(completion_text(c)) for c in completions]


def repetition_reward(
    completions: Sequence[Any], completion_ids: Any = None, **kwargs: Any
) -> list[float]:
    """0.5 unless 8-grams repeat back to back, on words and token ids (max 0.5)."""
    ids = _token_ids(completion_ids, len(completions))
    return [repetition_score(completion_text(c), t) for c, t in zip(completions, ids, strict=True)]


def grounded_region_reward(
    completions: Sequence[Any], answer: Any = None, dataset: Any = None, **kwargs: Any
) -> list[float]:
    """0.5 for a box before ``<rethink>``, 1.0 more for the right count (max 1.5)."""
    n = len(completions)
    return [
        grounded_region_score(completion_text(c), a, d)
        for c, a, d in zip(completions, column(answer, n), column(dataset, n), strict=True)
    ]


def think_rethink_format_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """Think/rethink tags walked in order, plus a non-trivial think part (max 0.5)."""
    return [think_rethink_format_score(completion_text(c)) for c in completions]


# The official order (it fixes the column order of TRL's logs, not the sum).
GRIT_REWARDS: list[RewardFunc] = [
    answer_accuracy_reward,
    answer_bleu_reward,
    answer_format_reward,
    repetition_reward,
    grounded_region_reward,
    think_rethink_format_reward,
]
REWARD_MAX: dict[str, float] = {
    "answer_accuracy_reward": 1.0,
    "answer_bleu_reward": 0.1,
    "answer_format_reward": 0.5,
    "repetition_reward": 0.5,
    "grounded_region_reward": 1.5,
    "think_rethink_format_reward": 0.5,
}
GRIT_MAX_TOTAL = 4.1


# ----------------------------------------------------------------------------------------
# A clean variant: the same intent without three quirks
# ----------------------------------------------------------------------------------------


def think_block(text: str) -> str | None:
    """Text between the first ``<think>`` and the ``</think>`` after it; ``None`` if unclosed."""
    start = text.find(THINK)
    if start < 0:
        return None
    end = text.find(THINK_END, start + len(THINK))
    return None if end < 0 else text[start + len(THINK) : end]


def clean_think_rethink_format_score(text: str) -> float:
    """Like :func:`think_rethink_format_score`, without its two quirks (max 0.5).

    A tag scores when it occurs exactly once and after the tag before it (first
    occurrences, no jump to the last one), so a duplicated tag costs only its own point.
    The bonus needs at least 2 words in the think block, split on any whitespace
    (``"two\\ncats"`` counts, ``"cat!"`` does not).
    """
    points, position = 0, 0
    for tag in (THINK, THINK_END, RETHINK, RETHINK_END):
        found = text.find(tag, position)
        if found >= 0 and text.count(tag) == 1:
            points += 1
            position = found + len(tag)
    think = think_block(text)
    if points == 4 and think is not None and len(_NOT_ALNUM.sub(" ", think).split()) >= 2:
        points += 1
    return points / 5 * 0.5


def clean_grounded_region_score(text: str, answer: str, dataset: str) -> float:
    """Like :func:`grounded_region_score`, counting boxes only inside the think block.

    The gate is a closed ``<think> ... </think>`` block instead of a ``<rethink>`` tag:
    boxes in a preamble, or in an unclosed think part, are not grounding the reasoning.
    The count bonus is unchanged (0 boxes still match the answer 0: nothing to ground).
    """
    think = think_block(text)
    if think is None:
        return 0.0
    boxes = count_boxes(think)
    score = 0.5 if boxes else 0.0
    if dataset == "tallyqa" and boxes == _as_count(answer):
        score += 1.0
    return score


def clean_answer_bleu_score(text: str, answer: str) -> float:
    """Like :func:`answer_bleu_score`, on the answer text only (max 0.1).

    The prediction is :func:`grit_lite.format.extract_answer`: cut at ``</answer>`` or a
    second ``<answer>``, so closing the tag no longer halves the reward.
    """
    prediction = extract_answer(text)
    if prediction is None:
        return 0.0
    return 0.1 * unigram_bleu(bleu_tokens(prediction), bleu_tokens(answer))


def clean_answer_bleu_reward(
    completions: Sequence[Any], answer: Any = None, **kwargs: Any
) -> list[float]:
    """BLEU of the answer text only (max 0.1); :func:`clean_answer_bleu_score`."""
    answers = column(answer, len(completions))
    return [
        clean_answer_bleu_score(completion_text(c), a)
        for c, a in zip(completions, answers, strict=True)
    ]


def clean_grounded_region_reward(
    completions: Sequence[Any], answer: Any = None, dataset: Any = None, **kwargs: Any
) -> list[float]:
    """Boxes inside ``<think> ... </think>`` only (max 1.5); :func:`clean_grounded_region_score`."""
    n = len(completions)
    return [
        clean_grounded_region_score(completion_text(c), a, d)
        for c, a, d in zip(completions, column(answer, n), column(dataset, n), strict=True)
    ]


def clean_think_rethink_format_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """Each tag once, in order, plus 2 words of thinking (max 0.5)."""
    return [clean_think_rethink_format_score(completion_text(c)) for c in completions]


CLEAN_REWARDS: list[RewardFunc] = [
    answer_accuracy_reward,
    clean_answer_bleu_reward,
    answer_format_reward,
    repetition_reward,
    clean_grounded_region_reward,
    clean_think_rethink_format_reward,
]
REWARD_MAX.update(
    clean_answer_bleu_reward=0.1,
    clean_grounded_region_reward=1.5,
    clean_think_rethink_format_reward=0.5,
)


# ----------------------------------------------------------------------------------------
# Opt-in: a reward for where the boxes are (not GRIT's; VLM-R1 pays one for grounding)
# ----------------------------------------------------------------------------------------


def box_place_score(
    text: str,
    bboxs: Sequence[Sequence[float]],
    size: tuple[int, int],
    seen: tuple[int, int] | None = None,
) -> float:
    """How well the think boxes cover the annotated objects: the matched mean IoU, in [0, 1].

    GRIT's grounded-region reward pays for boxes and their number, never for their place, so
    RL is free to move them anywhere. Here the think boxes (in the ``seen`` pixels the model
    read; default Qwen's resize of ``size``) are mapped to the image's pixels and matched
    one to one (Hungarian) with ``bboxs``; the IoU sum is divided by the larger count, so a
    missing box and an extra box both cost and many boxes do not pay. No boxes where objects
    exist scores 0; no boxes where none exist (a count of 0) scores 1.
    """
    from grit_lite.boxes import grounding_scores, qwen_resized_size, qwen_to_original
    from grit_lite.format import parse_completion

    try:
        width, height = int(size[0]), int(size[1])
        if width <= 0 or height <= 0:
            return 0.0
        seen = seen or qwen_resized_size(width, height)
        found = parse_completion(completion_text(text)).boxes
        boxes = [qwen_to_original(b, (width, height), seen) for b in found]
        return grounding_scores(boxes, [list(map(float, b)) for b in bboxs])["mean_iou"]
    except (TypeError, ValueError, IndexError):  # a malformed record: no signal, no crash
        return 0.0


def make_box_place_reward(seen: Callable[[int, int], tuple[int, int]] | None = None) -> RewardFunc:
    """The box-place reward in TRL's signature, for records with ``bboxs``, ``width``,
    ``height``. ``seen(width, height)`` is the size the model's processor resizes an image
    to (``grit_lite.boxes.resized_for``); by default Qwen2.5-VL's own resize. Records
    without annotated boxes and not a count of 0 (GRIT's VSR triplets) score 0 for every
    completion: the same value across a group, so no gradient and no harm."""

    def box_place_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
        n = len(completions)
        boxes = list(kwargs.get("bboxs") or [[]] * n)
        widths = list(kwargs.get("width") or [0] * n)
        heights = list(kwargs.get("height") or [0] * n)
        answers, datasets = column(kwargs.get("answer"), n), column(kwargs.get("dataset"), n)
        out = []
        for i, completion in enumerate(completions):
            zero_count = datasets[i] == "tallyqa" and _as_count(answers[i]) == 0
            if not boxes[i] and not zero_count:
                out.append(0.0)
                continue
            size = (widths[i], heights[i])
            try:
                shown = seen(*size) if seen is not None else None
            except (TypeError, ValueError):
                shown = None
            out.append(box_place_score(completion, boxes[i] or [], size, shown))
        return out

    return box_place_reward


box_place_reward = make_box_place_reward()
REWARD_MAX["box_place_reward"] = 1.0


# ----------------------------------------------------------------------------------------
# Display
# ----------------------------------------------------------------------------------------


def reward_label(fn: RewardFunc) -> str:
    """A short column name: ``answer_bleu_reward`` -> ``answer_bleu``."""
    return fn.__name__.removesuffix("_reward")


def reward_table(
    completions: Sequence[Any], rewards: Sequence[RewardFunc] | None = None, **columns: Any
) -> list[dict[str, float]]:
    """One dict per completion: each reward's value (by :func:`reward_label`) and the total.

    ``rewards`` defaults to :data:`GRIT_REWARDS`; ``columns`` are passed to every reward as
    TRL would (``answer=[...]``, ``dataset=[...]``, a single string for all). For a
    DataFrame: ``pandas.DataFrame(reward_table(...))``.
    """
    rewards = GRIT_REWARDS if rewards is None else rewards
    values = {reward_label(fn): fn(list(completions), **columns) for fn in rewards}
    rows = []
    for i in range(len(completions)):
        row = {label: column_values[i] for label, column_values in values.items()}
        row["total"] = sum(row.values())
        rows.append(row)
    return rows


def format_reward_table(
    rows: Sequence[dict[str, float]], names: Sequence[str] | None = None
) -> str:
    """A plain-text table of :func:`reward_table` rows (no pandas needed), one row a line."""
    if not rows:
        return ""
    labels = list(rows[0])
    names = list(names) if names is not None else [str(i) for i in range(len(rows))]
    first = max(len(n) for n in names)
    widths = [max(len(label), 5) for label in labels]
    lines = [
        " " * first + "  " + "  ".join(f"{la:>{w}}" for la, w in zip(labels, widths, strict=True))
    ]
    for name, row in zip(names, rows, strict=True):
        cells = "  ".join(f"{row[la]:>{w}.3f}" for la, w in zip(labels, widths, strict=True))
        lines.append(f"{name:<{first}}  {cells}")
    return "\n".join(lines)
