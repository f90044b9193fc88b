"""GRIT's rewards: the reference's worked values, hand-derived cases, TRL's call, fuzzing.

Every expected value below is derived by hand from the formulas in docs/grit_reference.md;
the comment next to it says how.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from grit_lite import examples as ex
from grit_lite import rewards as rw
from grit_lite.checks import ExerciseFailed
from grit_lite.checks.rewards import check_answer_format, check_think_rethink_format

WORKED_2 = "<think>x</think><rethink> ok </rethink><answer> 0 </answer>"
ZEBRAS_7 = ex.ZEBRAS.completion  # seven boxes listed, as the reference's worked values imply
ZEBRAS_6 = ZEBRAS_7.replace("7. (463, 171, 483, 186)\n", "")


@pytest.fixture(autouse=True, scope="module")
def _no_llm_judge() -> Iterator[None]:
    """The accuracy reward must use the offline rule judge in these tests."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("GRIT_JUDGE_BASE_URL", "GRIT_JUDGE_MODEL", "GRIT_JUDGE_API_KEY"):
            patch.delenv(name, raising=False)
        yield


def four(text: str, answer: str, dataset: str) -> tuple[float, float, float, float]:
    """(answer format, think/rethink format, grounded region, BLEU), the reference's order."""
    return (
        rw.answer_format_score(text),
        rw.think_rethink_format_score(text),
        rw.grounded_region_score(text, answer, dataset),
        rw.answer_bleu_score(text, answer),
    )


# --- the reference's worked values -------------------------------------------------------


def test_worked_value_zebras_with_seven_boxes() -> None:
    # 7 boxes before <rethink> = int("7") on tallyqa: 0.5 + 1.0; "<answer>\n7" -> ["7"].
    assert four(ZEBRAS_7, "7", "tallyqa") == pytest.approx((0.5, 0.5, 1.5, 0.1))


def test_zebras_with_six_boxes_get_no_count_bonus() -> None:
    # Drop one box: the count bonus needs 6 == int("7"), so grounded falls to 0.5; an answer
    # of "6" would earn it back.
    assert rw.count_boxes(ZEBRAS_7) == 7 and rw.count_boxes(ZEBRAS_6) == 6
    assert four(ZEBRAS_6, "7", "tallyqa") == pytest.approx((0.5, 0.5, 0.5, 0.1))
    assert rw.grounded_region_score(ZEBRAS_6, "6", "tallyqa") == 1.5


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("", 0.0),
        ("<answer>", 0.5),  # present and unique
        ("<answer> 2 <answer> 3", 0.25),  # present, not unique
        ("<answer><answer><answer>", 0.25),
        ("</answer>", 0.0),  # only the opening tag counts
        ("<ANSWER> 7", 0.0),  # case-sensitive
        ("<answer > 7", 0.0),
        ("answer: 7", 0.0),
        (ex.KNIFE.completion, 0.5),  # a wrong answer is still well formatted
    ],
)
def test_answer_format(text: str, want: float) -> None:
    assert rw.answer_format_score(text) == want


# --- think/rethink format ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("", 0.0),
        (ex.MALFORMED["plain answer"], 0.0),
        ("<think> a b </think><rethink> c </rethink>", 0.5),  # 4 tags + "a b"
        (ex.MALFORMED["no rethink"], 0.2),  # <think>, </think>
        (ex.MALFORMED["tags out of order"], 0.2),  # <think>, then </think> after it
        (ex.MALFORMED["unclosed think"], 0.3),  # </think> missing, the other three found
        (ex.MALFORMED["two answers"], 0.4),  # think content "x": 1 character
        (ex.MALFORMED["truncated box"], 0.1),
        (ex.MALFORMED["empty think"], 0.4),
        (ex.MALFORMED["think without boxes"], 0.5),  # the reward does not look for boxes
        # Quirk 1: after the LAST <think> nothing follows, so three tags are "missing".
        ("<think> a b </think><rethink> c </rethink><think>", 0.1),
        # ... and a repeated think block is judged on the last one: " b c " -> bonus.
        ("<think> a </think><think> b c </think><rethink> r </rethink>", 0.5),
        ("</think><think> a b <rethink></rethink>", 0.3),  # </think> only before <think>
        ("</rethink><rethink></think><think>", 0.1),
        # Quirk 2: the bonus splits on " " only.
        ("<think>two\ncats</think><rethink>r</rethink>", 0.4),  # one piece
        ("<think>cat!</think><rethink>r</rethink>", 0.5),  # "cat " -> ["cat", ""]
        ("<think>ab</think><rethink></rethink>", 0.4),  # 2 characters, one piece
        ("<think>a,b</think><rethink></rethink>", 0.5),  # "a b"
        ("<think>é ü</think><rethink></rethink>", 0.5),  # non-ASCII -> spaces, still pieces
    ],
)
def test_think_rethink_format(text: str, want: float) -> None:
    assert rw.think_rethink_format_score(text) == pytest.approx(want)


# --- grounded region -------------------------------------------------------------------------

TWO_BOXES = "<think> (1, 2, 3, 4) and [5, 6, 7, 8] </think><rethink> (9, 9, 9, 9) </rethink>"


@pytest.mark.parametrize(
    ("answer", "dataset", "want"),
    [
        ("2", "tallyqa", 1.5),  # 2 boxes before <rethink>; the one after is not counted
        ("3", "tallyqa", 0.5),
        ("2", "vsr", 0.5),  # no count bonus outside counting samples
        ("2", "TallyQA", 0.5),  # the dataset name must match exactly
        ("2", "", 0.5),  # unknown dataset
        (" 2 ", "tallyqa", 1.5),  # int(" 2 ") == 2: we mirror int(), whitespace and all
        ("2\n", "tallyqa", 1.5),
        ("+2", "tallyqa", 1.5),
        ("02", "tallyqa", 1.5),
        ("2.0", "tallyqa", 0.5),  # int() rejects it: no bonus (the official code crashed)
        ("two", "tallyqa", 0.5),
        ("", "tallyqa", 0.5),
        ("9" * 5000, "tallyqa", 0.5),  # beyond int()'s digit limit: still no crash
    ],
)
def test_grounded_region_count_bonus(answer: str, dataset: str, want: float) -> None:
    assert rw.grounded_region_score(TWO_BOXES, answer, dataset) == want


@pytest.mark.parametrize(
    ("text", "boxes"),
    [
        ("(200, 168, 248, 202)", 1),
        ('{"bbox_2d": [268, 92, 352, 162], "label": "cat"}', 1),
        ("1,2,3,4 5,6,7,8", 2),
        ("1, 2, 3, 4, 5", 1),  # non-overlapping: the 5 is left over
        ("1,1,1,1,1,1,1,1", 2),
        ("1, 2, 3", 0),
        ("1.5, 2, 3, 4", 1),  # the dot is a word boundary: "5, 2, 3, 4" matches
        ("[1.5, 2.5, 3.5, 4.5]", 0),
        ("a1, 2, 3, 4", 0),  # no word boundary before the 1, and "2, 3, 4" is three
        ("(268, 92, 35", 0),
    ],
)
def test_box_counting_regex(text: str, boxes: int) -> None:
    assert rw.count_boxes(text) == boxes


def test_grounded_region_gates_and_quirks() -> None:
    assert rw.grounded_region_score(ex.MALFORMED["no rethink"], "2", "tallyqa") == 0.0
    # Zero boxes match an answer of 0: the bonus pays with no grounding at all.
    assert rw.grounded_region_score("<think> no cats </think><rethink>", "0", "tallyqa") == 1.0
    assert rw.grounded_region_score("<think> no cats </think><rethink>", "0", "vsr") == 0.0
    # A box outside <think> (here before it) still counts, officially.
    assert (
        rw.grounded_region_score("(1, 2, 3, 4) <think> x </think><rethink>", "1", "tallyqa") == 1.5
    )
    # Only the text before the FIRST <rethink> is read.
    assert rw.grounded_region_score("<rethink> (1, 2, 3, 4) <rethink>", "1", "tallyqa") == 0.0


def test_grounded_region_uses_each_samples_dataset() -> None:
    # The official code used the first sample's dataset for the whole batch.
    got = rw.grounded_region_reward([TWO_BOXES] * 2, answer=["2", "2"], dataset=["vsr", "tallyqa"])
    assert got == [0.5, 1.5]


# --- answer BLEU -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "answer", "want"),
    [
        ("<answer> a red car", "red car", 0.1 * 2 / 3),  # precision 2/3, hypothesis longer: BP 1
        ("<answer> car", "red car", 0.1 * math.exp(1 - 2 / 1)),  # precision 1, BP e^(1 - r/c)
        ("<answer> yes yes yes", "yes", 0.1 / 3),  # clipped: "yes" counts once of 3
        ("<answer> Yes!", "yes", 0.1),  # lowercased, "!" -> space
        ("<answer>", "7", 0.0),  # empty hypothesis
        ("<answer> 7", "", 0.0),  # empty reference
        ("<answer> !!!", "!!!", 0.0),  # both empty after cleaning
        ("<answer> Café", "cafe", 0.0),  # "é" -> space: ["caf"] vs ["cafe"]
        ("<answer> café", "café", 0.1),  # ["caf"] vs ["caf"]
        ("<answer> 7 <answer> 7", "7", 0.1 / 3),  # ["7", "answer", "7"]: clipped 1/3
        ("I count 7 <answer> 8", "7", 0.0),  # only the text after <answer> is read
        ("7", "7", 0.0),  # no <answer>
    ],
)
def test_answer_bleu(text: str, answer: str, want: float) -> None:
    assert rw.answer_bleu_score(text, answer) == pytest.approx(want)


def _unigram_bleu_by_hand(hyp: list[str], ref: list[str]) -> float:
    if not hyp or not ref:
        return 0.0
    clipped = sum(min(hyp.count(w), ref.count(w)) for w in set(hyp))
    bp = 1.0 if len(hyp) > len(ref) else math.exp(1 - len(ref) / len(hyp))
    return bp * clipped / len(hyp)


@given(
    st.lists(st.sampled_from("abcde"), max_size=8), st.lists(st.sampled_from("abcde"), max_size=8)
)
def test_nltk_unigram_bleu_is_bp_times_clipped_precision(hyp: list[str], ref: list[str]) -> None:
    assert rw.unigram_bleu(hyp, ref) == pytest.approx(_unigram_bleu_by_hand(hyp, ref))


def test_bleu_is_quiet(recwarn: pytest.WarningsRecorder) -> None:
    # nltk warns about 0 counts of 2-, 3-, 4-gram overlaps; the reward must not.
    assert rw.answer_bleu_score("<answer> a", "a b") == pytest.approx(0.1 * math.exp(-1))
    assert rw.answer_bleu_score("<answer> x", "y") == 0.0
    assert len(recwarn) == 0


# --- repetition -----------------------------------------------------------------------------

WORDS = [f"w{i}" for i in range(40)]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("a a a a a a a", 0.5),  # 7 words: shorter than 8, no penalty
        (" ".join(WORDS), 0.5),  # no repeat
        (" ".join(WORDS[:8] * 2), 0.5 * (1 - 1 / 9)),  # 9 8-grams, the first repeated
        ("a " * 20, 0.5 * (1 - 5 / 13)),  # 13 8-grams, positions 0..4 repeated
        ("a " * 100, 0.5 * (1 - 85 / 93)),
        (" ".join(WORDS[:4] * 4), 0.5 * (1 - 1 / 9)),  # period 4 divides 8: caught
        (" ".join(WORDS[:3] * 10), 0.5),  # period 3: copies 3 apart, never 8: missed
        ("a\nb\tc " * 3, 0.5),  # 9 whitespace-split words, no period dividing 8
    ],
)
def test_repetition_on_words(text: str, want: float) -> None:
    assert rw.repetition_score(text) == pytest.approx(want)


def test_repetition_on_token_ids() -> None:
    text = " ".join(WORDS[:10])  # words do not repeat
    assert rw.repetition_score(text, [7] * 20) == pytest.approx(0.5 * (1 - 5 / 13))
    assert rw.repetition_score(text, list(range(30))) == 0.5
    assert rw.repetition_score(text, [1, 1, 1]) == 0.5  # fewer than 8 tokens: no 8-grams
    assert rw.repetition_score("a a a", [7] * 50) == 0.5  # fewer than 8 words: 0.5 outright
    # Through TRL's kwarg, as lists or tensors; a mismatched length is ignored.
    ids = [[7] * 20, list(range(20))]
    want = [0.5 * (1 - 5 / 13), 0.5]
    assert rw.repetition_reward([text, text], completion_ids=ids) == pytest.approx(want)
    tensors = [torch.tensor(i) for i in ids]
    assert rw.repetition_reward([text, text], completion_ids=tensors) == pytest.approx(want)
    assert rw.repetition_reward([text, text], completion_ids=ids[:1]) == [0.5, 0.5]


def test_official_repetition_pays_a_loop_twice_and_can_go_negative() -> None:
    words = [f"w{i}" for i in range(12)]
    assert rw.official_repetition_score(" ".join(words), list(range(30))) == 0.5
    # 16 words, one 8-gram said twice: 1 repeat in 16 - 8 = 8 word positions, no ids
    assert rw.official_repetition_score(" ".join(words[:8] * 2)) == pytest.approx(0.5 * 7 / 8)
    # one word 100 times, one id 100 times: words 85 repeats of 92, ids 85 of 85
    loop = rw.official_repetition_score("zebra " * 100, [7] * 100)
    assert loop == pytest.approx((0.0 - 85 / 92) * 0.5)
    assert loop < 0 < rw.repetition_score("zebra " * 100, [7] * 100)
    # the ids are cut at the first pad id: 10 ids left, too few for two 8-grams
    assert rw.official_repetition_score("a b", [*range(10), rw.PAD_ID, *[7] * 40]) == 0.5


# --- answer accuracy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("example", "want"), [(ex.ZEBRAS, 1.0), (ex.CAT_ON_TRUCK, 1.0), (ex.KNIFE, 0.0)]
)
def test_accuracy_on_real_style_outputs(example: ex.Example, want: float) -> None:
    got = rw.answer_accuracy_reward(
        [example.completion], answer=[example.answer], question=[example.question]
    )
    assert got == [want]


def test_accuracy_binarises_the_judge_and_skips_missing_answers() -> None:
    calls: list[tuple[str, str, str]] = []

    def judge(question: str, answer: str, prediction: str) -> float:
        calls.append((question, answer, prediction))
        return {"a": 0.1, "b": 0.0, "c": 1.0}[prediction]

    reward = rw.make_answer_accuracy_reward(judge)
    assert reward.__name__ == "answer_accuracy_reward"  # TRL logs rewards by __name__
    texts = ["<answer> a", "<answer> b </answer>", "<answer>c<answer>d", "c", "<answer>  "]
    assert reward(texts, answer="x", question="q") == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert calls == [("q", "x", "a"), ("q", "x", "b"), ("q", "x", "c")]  # none without answer


# --- TRL's call convention ------------------------------------------------------------------


def trl_call(fn: rw.RewardFunc, completions: list, **columns: list) -> list[float]:
    """Call ``fn`` with every keyword GRPOTrainer._calculate_rewards passes in TRL 1.16."""
    n = len(completions)
    return fn(
        prompts=[[{"role": "user", "content": "Question: ..."}]] * n,
        completions=completions,
        completion_ids=[[1, 2, 3]] * n,
        **columns,
        trainer_state=object(),
        log_extra=lambda *a, **k: None,
        log_metric=lambda *a, **k: None,
    )


def conversational(text: str, parts: bool = False) -> list[dict]:
    content = [{"type": "text", "text": text}] if parts else text
    return [{"role": "assistant", "content": content}]


@pytest.mark.parametrize("fn", rw.GRIT_REWARDS + rw.CLEAN_REWARDS, ids=rw.reward_label)
def test_trl_call_with_strings_and_conversations(fn: rw.RewardFunc) -> None:
    texts = [e.completion for e in ex.REAL_STYLE] + [WORKED_2]
    columns = {
        "answer": [e.answer for e in ex.REAL_STYLE] + ["0"],
        "dataset": [e.dataset for e in ex.REAL_STYLE] + ["tallyqa"],
        "question": [e.question for e in ex.REAL_STYLE] + ["How many?"],
        "image": [None] * 4,  # any other column is ignored
    }
    want = trl_call(fn, texts, **columns)
    assert len(want) == 4 and all(isinstance(v, float) for v in want)
    assert trl_call(fn, [conversational(t) for t in texts], **columns) == want
    assert trl_call(fn, [conversational(t, parts=True) for t in texts], **columns) == want


@pytest.mark.parametrize("fn", rw.GRIT_REWARDS + rw.CLEAN_REWARDS, ids=rw.reward_label)
def test_missing_columns_do_not_crash(fn: rw.RewardFunc) -> None:
    got = fn([ex.ZEBRAS.completion, ""])
    assert len(got) == 2 and all(0.0 <= v <= rw.REWARD_MAX[fn.__name__] for v in got)


def test_missing_columns_mean_unknown() -> None:
    assert rw.grounded_region_reward([ZEBRAS_7]) == [0.5]  # no dataset: no count bonus
    assert rw.grounded_region_reward([ZEBRAS_7], answer=["7"]) == [0.5]
    assert rw.answer_accuracy_reward([ZEBRAS_7]) == [0.0]  # nothing to match against
    assert rw.answer_bleu_reward([ZEBRAS_7]) == [0.0]


def test_completion_text_forms() -> None:
    assert rw.completion_text("abc") == "abc"
    assert rw.completion_text(None) == ""
    assert rw.completion_text([]) == ""
    image_and_text = [{"type": "image"}, {"type": "text", "text": "<answer> 7"}]
    assert rw.completion_text([{"role": "assistant", "content": image_and_text}]) == "<answer> 7"
    tool_turn = [
        {"role": "assistant", "content": "<think> a"},
        {"role": "tool", "content": "ignored"},
        {"role": "assistant", "content": " b </think>"},
    ]
    assert rw.completion_text(tool_turn) == "<think> a b </think>"
    assert rw.completion_text({"content": "x"}) == "x"


def test_columns() -> None:
    assert rw.column(None, 2) == ["", ""]
    assert rw.column("7", 2) == ["7", "7"]
    assert rw.column([7, None], 2) == ["7", ""]
    with pytest.raises(ValueError, match="2 values for 3"):
        rw.column(["a", "b"], 3)


# --- presets ----------------------------------------------------------------------------------


def test_grit_preset_order_and_maxima() -> None:
    assert [f.__name__ for f in rw.GRIT_REWARDS] == [
        "answer_accuracy_reward",
        "answer_bleu_reward",
        "answer_format_reward",
        "repetition_reward",
        "grounded_region_reward",
        "think_rethink_format_reward",
    ]
    assert sum(rw.REWARD_MAX[f.__name__] for f in rw.GRIT_REWARDS) == pytest.approx(4.1)
    assert sum(rw.REWARD_MAX[f.__name__] for f in rw.CLEAN_REWARDS) == pytest.approx(4.1)
    assert rw.GRIT_MAX_TOTAL == 4.1


def test_a_perfect_completion_reaches_the_maximum() -> None:
    rows = rw.reward_table([ZEBRAS_7], answer="7", dataset="tallyqa", question="How many?")
    assert rows[0]["total"] == pytest.approx(rw.GRIT_MAX_TOTAL)


def test_reward_table() -> None:
    rows = rw.reward_table(["The answer is 3.", WORKED_2], answer=["3", "0"], dataset="tallyqa")
    assert list(rows[0]) == [
        "answer_accuracy",
        "answer_bleu",
        "answer_format",
        "repetition",
        "grounded_region",
        "think_rethink_format",
        "total",
    ]
    assert rows[0]["total"] == 0.5  # only repetition: fewer than 8 words
    # accuracy 1 ("0" == "0"), BLEU 0.05, formats 0.5 + 0.4, repetition 0.5, grounded 1.0
    assert rows[1]["total"] == pytest.approx(1 + 0.05 + 0.5 + 0.5 + 1.0 + 0.4)
    text = rw.format_reward_table(rows, ["plain", "worked"])
    assert text.splitlines()[0].split() == list(rows[0])
    assert text.splitlines()[2].startswith("worked") and "3.450" in text
    clean = rw.reward_table([WORKED_2], rw.CLEAN_REWARDS, answer="0", dataset="tallyqa")
    assert clean[0]["clean_answer_bleu"] == pytest.approx(0.1)


# --- the clean variant ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "official", "clean"),
    [
        ("<think> a b </think><rethink> c </rethink>", 0.5, 0.5),  # agree on good output
        (ex.ZEBRAS.completion, 0.5, 0.5),
        (WORKED_2, 0.4, 0.4),
        ("<think> a b </think><rethink> c </rethink><think>", 0.1, 0.3),  # <think> twice: -1
        ("<think> a </think><think> b c </think><rethink> r </rethink>", 0.5, 0.2),
        ("<think>two\ncats</think><rethink>r</rethink>", 0.4, 0.5),  # any whitespace splits
        ("<think>cat!</think><rethink>r</rethink>", 0.5, 0.4),  # one word is not thinking
        (ex.MALFORMED["tags out of order"], 0.2, 0.2),  # both: <think>, </think>, no more
        (ex.MALFORMED["unclosed think"], 0.3, 0.3),
    ],
)
def test_clean_think_rethink_format(text: str, official: float, clean: float) -> None:
    assert rw.think_rethink_format_score(text) == pytest.approx(official)
    assert rw.clean_think_rethink_format_score(text) == pytest.approx(clean)


def test_clean_grounded_region_counts_only_inside_think() -> None:
    preamble = "(1, 2, 3, 4) <think> x </think><rethink>"
    assert rw.grounded_region_score(preamble, "1", "tallyqa") == 1.5
    assert rw.clean_grounded_region_score(preamble, "1", "tallyqa") == 0.0
    unclosed = ex.MALFORMED["unclosed think"]  # box inside an unclosed <think>
    assert rw.grounded_region_score(unclosed, "mug", "vsr") == 0.5
    assert rw.clean_grounded_region_score(unclosed, "mug", "vsr") == 0.0
    no_rethink = ex.MALFORMED["no rethink"]  # two boxes in a closed think, no <rethink>
    assert rw.grounded_region_score(no_rethink, "2", "tallyqa") == 0.0
    assert rw.clean_grounded_region_score(no_rethink, "2", "tallyqa") == 1.5
    assert rw.clean_grounded_region_score(ZEBRAS_7, "7", "tallyqa") == 1.5


def test_clean_bleu_reads_the_answer_only() -> None:
    assert rw.clean_answer_bleu_score(WORKED_2, "0") == pytest.approx(0.1)  # official 0.05
    assert rw.clean_answer_bleu_score("<answer> 7 <answer> 7", "7") == pytest.approx(0.1)
    assert rw.clean_answer_bleu_score("no answer tag 7", "7") == 0.0


# --- checkers ----------------------------------------------------------------------------------


def test_checkers_pass_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    check_think_rethink_format(rw.think_rethink_format_score)
    check_answer_format(rw.answer_format_score)
    assert capsys.readouterr().out.count("PASSED") == 2


def test_checkers_fail_plausible_mistakes(capsys: pytest.CaptureFixture[str]) -> None:
    def unfinished(text: str) -> float:
        raise NotImplementedError

    for wrong in (rw.clean_think_rethink_format_score, unfinished, lambda t: 0.5):
        with pytest.raises(ExerciseFailed):
            check_think_rethink_format(wrong)
    for wrong in (lambda t: 0.5 * ("<answer>" in t), lambda t: 0.25 * t.count("<answer>")):
        with pytest.raises(ExerciseFailed):
            check_answer_format(wrong)
    assert "FAILED" in capsys.readouterr().out


# --- totality: any input, a value in [0, max] ---------------------------------------------------

PIECES = [
    "<think>", "</think>", "<rethink>", "</rethink>", "<answer>", "</answer>", " ", "\n",
    "(1, 2, 3, 4)", "7", "0", "a", "yes", "zebra", ",", "!", "é", "٧",
]  # fmt: skip
TEXTS = st.one_of(st.text(), st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
ANSWERS = st.one_of(st.text(max_size=12), st.sampled_from(["0", "1", "7", " 7 ", "yes", "7.0"]))
DATASETS = st.one_of(st.text(max_size=8), st.sampled_from(["tallyqa", "vsr"]))


@given(
    st.lists(st.tuples(TEXTS, ANSWERS, DATASETS), min_size=1, max_size=4),
    st.booleans(),
    st.lists(st.integers(0, 3), max_size=40),
)
def test_rewards_are_total_and_bounded(
    rows: list[tuple[str, str, str]], chat: bool, ids: list[int]
) -> None:
    texts, answers, datasets = (list(col) for col in zip(*rows, strict=True))
    completions = [conversational(t) for t in texts] if chat else texts
    columns = {"answer": answers, "dataset": datasets, "question": texts}
    totals = [0.0] * len(texts)
    presets = [(fn, True) for fn in rw.GRIT_REWARDS] + [(fn, False) for fn in rw.CLEAN_REWARDS]
    for fn, in_grit_total in presets:
        values = fn(completions, completion_ids=[ids] * len(texts), **columns)
        assert len(values) == len(texts)
        for i, value in enumerate(values):
            assert math.isfinite(value) and 0.0 <= value <= rw.REWARD_MAX[fn.__name__] + 1e-12
            totals[i] += value if in_grit_total else 0.0
    assert all(total <= rw.GRIT_MAX_TOTAL + 1e-9 for total in totals)
