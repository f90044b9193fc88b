"""Answer judges: is the answer in a completion right, given the question and ground truth?

GRIT's accuracy reward asks an LLM (GPT-4o) to score the model's answer against the
ground truth in [0, 1]. A course must run offline and for free, so the default here is
:func:`rule_judge`, a small rule-based judge that is good enough for GRIT's short answers
(counts, yes/no, object names). :class:`LLMJudge` talks to any OpenAI-compatible
chat-completions endpoint, and is used only when you configure it with environment
variables (see :func:`judge_from_env`); without them nothing here touches the network.

A judge is any ``judge(question, answer, prediction) -> float`` in [0, 1], where
``prediction`` is the completion's answer text (see :func:`grit_lite.format.extract_answer`).
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path

Judge = Callable[[str, str, str], float]


# ----------------------------------------------------------------------------------------
# The rule judge
# ----------------------------------------------------------------------------------------

NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
BOOLEAN_WORDS = {"true": "yes", "false": "no"}
ARTICLES = frozenset({"a", "an", "the"})
# A signed decimal number, or a run of letters/digits (any script); everything else
# (punctuation, symbols, whitespace) only separates tokens.
_TOKEN = re.compile(r"[-+]?\d+(?:\.\d+)?|[^\W_]+")


def _canonical_number(token: str) -> str:
    """``"7.0"``, ``"07"``, ``"+7"`` -> ``"7"``; ``"2.50"`` -> ``"2.5"``; other tokens unchanged."""
    try:
        value = float(token)
    except ValueError:
        return token
    if not math.isfinite(value):
        return token
    return str(int(value)) if value.is_integer() else repr(value)


def normalize_answer(text: str) -> list[str]:
    """Tokens of an answer, normalised so that equal answers give equal token lists.

    Rules, in order (each one is tested in ``tests/test_judge.py``):

    1. case is ignored: ``"Yes"`` -> ``["yes"]``;
    2. punctuation and symbols separate tokens and are dropped:
       ``"yes, it is."`` -> ``["yes", "it", "is"]``; a number keeps its sign and decimal
       point: ``"-3.5"`` -> ``["-3.5"]``;
    3. the articles a, an, the are dropped: ``"the fork"`` -> ``["fork"]``;
    4. number words zero..twenty become digits: ``"Seven"`` -> ``["7"]``
       (``"twenty-one"`` becomes ``["20", "1"]``: compound number words are not parsed);
    5. numbers are compared by value: ``"7.0"``, ``"07"`` and ``"+7"`` -> ``["7"]``;
    6. true/false mean yes/no: ``"True"`` -> ``["yes"]``.
    """
    tokens = []
    for token in _TOKEN.findall(text.lower()):
        if token in ARTICLES:
            continue
        token = NUMBER_WORDS.get(token, token)
        token = BOOLEAN_WORDS.get(token, token)
        tokens.append(_canonical_number(token))
    return tokens


def rule_judge(question: str, answer: str, prediction: str) -> float:
    """1.0 if ``prediction`` gives the ground-truth ``answer``, else 0.0 (question unused).

    Both are normalised by :func:`normalize_answer`; the prediction is right when its
    tokens equal the answer's, or *start with* them, so a short answer followed by an
    explanation counts: ``"yes, the cat is on the truck"`` == ``"yes"``, ``"2 zebras"`` ==
    ``"2"``, ``"a fork."`` == ``"fork"``, ``"seven"`` == ``"7"``, ``"7.0"`` == ``"7"``,
    ``"True"`` == ``"yes"``. Not right: ``"There are 7 zebras"`` vs ``"7"`` (the answer
    must come first), ``"2.5"`` vs ``"2"``, ``"not"`` vs ``"no"``, and anything against
    an empty ground truth (there is nothing to match). The start rule is lenient on
    purpose (GRIT's answers are one word); its cost is that ``"yes and no"`` == ``"yes"``.
    """
    del question  # the rules do not need it; the LLM judge does
    want, got = normalize_answer(answer), normalize_answer(prediction)
    return float(bool(want) and got[: len(want)] == want)


# ----------------------------------------------------------------------------------------
# The optional LLM judge
# ----------------------------------------------------------------------------------------

JUDGE_PROMPT = """You grade answers to questions about images. You cannot see the image: \
compare the candidate answer with the ground-truth answer only.

Question: {question}
Ground-truth answer: {answer}
Candidate answer: {prediction}

Give a score from 0 to 1: 1 if the candidate means the same as the ground truth (wording, \
case, articles, number words versus digits and extra explanation do not matter), 0 if it \
is wrong or gives no answer, and a value in between only for a partly right answer. \
Reply with the number alone, for example 1 or 0 or 0.5."""

_NUMBER_REPLY = re.compile(r"^\s*(?:score\s*[:=]?\s*)?([01](?:\.\d+)?|\.\d+)\s*\.?\s*$", re.I)


def parse_score(reply: str) -> float | None:
    """The score in a judge's reply, or ``None`` if the reply is not just a number in [0, 1].

    Accepted: ``"1"``, ``" 0.5\\n"``, ``"Score: 0.8"``, ``"1."``. Rejected (``None``):
    ``"yes"``, ``"1.5"``, ``"0 or 1"``, ``""``: a reply we cannot read exactly is not
    guessed at.
    """
    match = _NUMBER_REPLY.match(reply)
    if not match:
        return None
    score = float(match.group(1))
    return score if 0.0 <= score <= 1.0 else None


class LLMJudge:
    """Score answers with an OpenAI-compatible chat-completions endpoint (stdlib only).

    Each distinct ``(question, answer, prediction)`` is asked once: scores are kept in
    memory and, with ``cache_path``, appended to a JSON-lines file that a later run reads
    back (GRPO asks the same short answers again and again). Network errors, timeouts,
    HTTP 429 and 5xx are retried ``retries`` times with exponential backoff
    (``backoff``, ``2 * backoff``, ...). When the endpoint still fails, or its reply is
    not a number in [0, 1], the judge warns and falls back to :func:`rule_judge` for that
    call (the fallback is not cached, so a later call asks again).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 1.0,
        cache_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key = model, api_key
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.cache_path = Path(cache_path) if cache_path else None
        self.cache: dict[tuple[str, str, str], float] = {}
        self.requests_made = 0  # HTTP requests sent, retries included (tests read this)
        self._lock = threading.Lock()
        if self.cache_path and self.cache_path.exists():
            for line in self.cache_path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    key = (str(row["question"]), str(row["answer"]), str(row["prediction"]))
                    score = float(row["score"])
                except (ValueError, KeyError, TypeError):
                    continue  # a torn line from an interrupted run: skip it
                if 0.0 <= score <= 1.0:
                    self.cache[key] = score

    def __call__(self, question: str, answer: str, prediction: str) -> float:
        key = (question, answer, prediction)
        if key in self.cache:
            return self.cache[key]
        reply = self._ask(
            JUDGE_PROMPT.format(question=question, answer=answer, prediction=prediction)
        )
        score = None if reply is None else parse_score(reply)
        if score is None:
            if reply is not None:
                warnings.warn(
                    f"LLM judge reply {reply[:80]!r} is not a score in [0, 1]; "
                    "using the rule judge",
                    stacklevel=2,
                )
            return rule_judge(question, answer, prediction)
        self._remember(key, score)
        return score

    def _ask(self, prompt: str) -> str | None:
        """The reply text, or ``None`` (after a warning) when the endpoint keeps failing."""
        body = json.dumps(
            {
                "model": self.model,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": 0,
                "max_tokens": 8,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        error: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            self.requests_made += 1
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    data = json.loads(response.read().decode("utf-8"))
                content = data["choices"][0]["message"]["content"]
                if not isinstance(content, str):
                    raise TypeError(f"message content is {type(content).__name__}, not text")
                return content
            except urllib.error.HTTPError as err:
                error = err
                err.close()  # it holds the response's socket
                if err.code != 429 and err.code < 500:
                    break  # a client error (bad key, bad model) will not fix itself
            except (OSError, http.client.HTTPException) as err:
                error = err  # refused, reset, DNS, timeout (URLError is an OSError): retry
            except (ValueError, KeyError, IndexError, TypeError) as err:
                error = err  # not the JSON shape of a chat completion: a bad reply
                break
        warnings.warn(f"LLM judge failed ({error!r}); using the rule judge", stacklevel=3)
        return None

    def _remember(self, key: tuple[str, str, str], score: float) -> None:
        with self._lock:
            self.cache[key] = score
            if self.cache_path:
                row = dict(zip(("question", "answer", "prediction"), key, strict=True))
                row["score"] = score
                with self.cache_path.open("a", encoding="utf-8") as file:
                    file.write(json.dumps(row) + "\n")


ENV_BASE_URL, ENV_API_KEY, ENV_MODEL = (
    "GRIT_JUDGE_BASE_URL",
    "GRIT_JUDGE_API_KEY",
    "GRIT_JUDGE_MODEL",
)
ENV_TIMEOUT, ENV_CACHE = "GRIT_JUDGE_TIMEOUT", "GRIT_JUDGE_CACHE"
_JUDGES: dict[tuple[str, ...], LLMJudge] = {}


def judge_from_env() -> Judge:
    """The judge the accuracy reward uses: an :class:`LLMJudge` when configured, else rules.

    Set ``GRIT_JUDGE_BASE_URL`` (e.g. ``https://api.openai.com/v1``) and
    ``GRIT_JUDGE_MODEL`` (e.g. ``gpt-4o``) to enable it, plus ``GRIT_JUDGE_API_KEY`` if the
    endpoint needs one; optional: ``GRIT_JUDGE_TIMEOUT`` (seconds, default 30) and
    ``GRIT_JUDGE_CACHE`` (a JSON-lines file for the score cache). One judge (and cache)
    is kept per configuration.
    """
    base_url, model = os.environ.get(ENV_BASE_URL, ""), os.environ.get(ENV_MODEL, "")
    if not (base_url and model):
        return rule_judge
    config = (
        base_url,
        model,
        os.environ.get(ENV_API_KEY, ""),
        os.environ.get(ENV_TIMEOUT, "30"),
        os.environ.get(ENV_CACHE, ""),
    )
    if config not in _JUDGES:
        try:
            timeout = float(config[3])
        except ValueError:
            timeout = 30.0
        _JUDGES[config] = LLMJudge(
            base_url, model, config[2], timeout, cache_path=config[4] or None
        )
    return _JUDGES[config]
