"""Answer judges: every rule of the rule judge, and the LLM judge against a local fake server."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grit_lite import judge as jd
from grit_lite import rewards as rw
from grit_lite.format import extract_answer

# --- extracting the answer ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("The answer is 3.", None),  # no tag, no answer
        ("", None),
        ("<answer>\n7", "7"),  # GRIT's usual unclosed tag
        ("<answer> 0 </answer>", "0"),
        ("<answer> 0 </answer> more", "0"),
        ("<answer> 2 <answer> 3", "2"),  # a second <answer> ends the first
        ("<think> x </think><answer>", ""),
    ],
)
def test_extract_answer(text: str, want: str | None) -> None:
    assert extract_answer(text) == want  # the judge reads answers with format.extract_answer


# --- normalisation, one rule at a time ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Yes", ["yes"]),  # 1. case
        ("yes, it is.", ["yes", "it", "is"]),  # 2. punctuation separates and is dropped
        ("-3.5", ["-3.5"]),  # 2. ... but a number keeps sign and decimal point
        ("x-ray", ["x", "ray"]),
        ("the fork", ["fork"]),  # 3. articles
        ("A cat and an apple", ["cat", "and", "apple"]),
        ("Seven", ["7"]),  # 4. number words
        ("zero twenty", ["0", "20"]),
        ("twenty-one", ["20", "1"]),  # 4. compounds are not parsed
        ("7.0", ["7"]),  # 5. numbers by value
        ("07 +7 2.50", ["7", "7", "2.5"]),
        ("True", ["yes"]),  # 6. booleans
        ("false", ["no"]),
        ("", []),
        ("!!!", []),
    ],
)
def test_normalize_answer(text: str, tokens: list[str]) -> None:
    assert jd.normalize_answer(text) == tokens


@pytest.mark.parametrize(
    ("answer", "prediction", "want"),
    [
        ("yes", "Yes", 1.0),  # case
        ("yes", "yes.", 1.0),  # punctuation
        ("fork", "a fork.", 1.0),  # articles
        ("the fork", "fork", 1.0),
        ("7", "seven", 1.0),  # number words
        ("seven", "7", 1.0),
        ("7", "7.0", 1.0),  # numeric comparison
        ("0.5", ".5", 0.0),  # ... only for numbers with a leading digit
        ("yes", "true", 1.0),  # booleans
        ("no", "False", 1.0),
        ("yes", "yes, the cat is on the truck", 1.0),  # a short answer leading a sentence
        ("2", "2 zebras", 1.0),
        ("red car", "red car on the left", 1.0),
        ("7", "There are 7 zebras", 0.0),  # the answer must come first
        ("2", "2.5", 0.0),
        ("no", "not", 0.0),
        ("no", "yes", 0.0),
        ("red car", "red", 0.0),  # a prefix of the answer is not the answer
        ("", "anything", 0.0),  # an empty ground truth matches nothing
        ("!!!", "", 0.0),
        ("7", "", 0.0),
        ("yes", "yes and no", 1.0),  # the documented cost of the lenient start rule
    ],
)
def test_rule_judge(answer: str, prediction: str, want: float) -> None:
    assert jd.rule_judge("any question", answer, prediction) == want


@given(st.text(), st.text())
def test_rule_judge_is_total(answer: str, prediction: str) -> None:
    assert jd.rule_judge("q", answer, prediction) in (0.0, 1.0)
    assert jd.rule_judge("q", prediction, prediction) == float(
        bool(jd.normalize_answer(prediction))
    )


@pytest.mark.parametrize(
    ("reply", "want"),
    [
        ("1", 1.0),
        (" 0.5\n", 0.5),
        ("Score: 0.8", 0.8),
        ("1.", 1.0),
        (".25", 0.25),
        ("0", 0.0),
        ("yes", None),
        ("1.5", None),
        ("0 or 1", None),
        ("", None),
        ("-0.5", None),
    ],
)
def test_parse_score(reply: str, want: float | None) -> None:
    assert jd.parse_score(reply) == want


# --- the LLM judge against a fake OpenAI-compatible server -------------------------------------


def chat_reply(content: str) -> bytes:
    return json.dumps(
        {"choices": [{"message": {"role": "assistant", "content": content}}]}
    ).encode()


class FakeServer:
    """A chat-completions endpoint on 127.0.0.1 that plays a fixed script of responses.

    Each request takes the next ``(status, body, delay_s)``; past the script it answers
    500, so a test can never loop on it. The request bodies and headers are recorded.
    """

    def __init__(self, script: list[tuple[int, bytes, float]]) -> None:
        self.script, self.requests = list(script), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, dict(self.headers), json.loads(body)))
                status, reply, delay = outer.script.pop(0) if outer.script else (500, b"", 0)
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:  # the client gave up (timeout test)
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeServer:
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def make_judge(server: FakeServer, **kwargs: object) -> jd.LLMJudge:
    options = {"timeout": 2.0, "retries": 2, "backoff": 0.01, **kwargs}
    return jd.LLMJudge(server.url, "fake-model", "secret", **options)  # type: ignore[arg-type]


# "crimson" vs "red": the rule judge says 0, so a 1 can only come from the LLM.
Q, A, P = "What color is the car?", "red", "crimson"


def test_llm_judge_good_reply() -> None:
    with FakeServer([(200, chat_reply("1"), 0)]) as server:
        assert make_judge(server)(Q, A, P) == 1.0
    path, headers, body = server.requests[0]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer secret"
    assert body["model"] == "fake-model" and body["temperature"] == 0
    prompt = body["messages"][-1]["content"]
    assert Q in prompt and A in prompt and P in prompt


def test_llm_judge_timeout_falls_back_to_rules() -> None:
    with FakeServer([(200, chat_reply("1"), 3.0)]) as server:
        judge = make_judge(server, timeout=0.2, retries=0)
        start = time.perf_counter()
        with pytest.warns(UserWarning, match="LLM judge failed"):
            assert judge(Q, A, P) == 0.0  # the rule judge's verdict
        assert time.perf_counter() - start < 2.0  # gave up long before the 3 s reply
        assert judge.cache == {}  # a fallback is not cached


MALFORMED_BODIES = [
    chat_reply("I think it is right"),
    b"not json",
    b"{}",
    json.dumps({"choices": [{"message": {"content": None}}]}).encode(),
]


@pytest.mark.parametrize("body", MALFORMED_BODIES)
def test_llm_judge_malformed_reply_falls_back_to_rules(body: bytes) -> None:
    with FakeServer([(200, body, 0)] * 2) as server:
        with pytest.warns(UserWarning, match="rule judge"):
            assert make_judge(server)(Q, A, P) == 0.0
        with pytest.warns(UserWarning, match="rule judge"):
            assert make_judge(server)(Q, A, "red.") == 1.0  # rules, not a guess


def test_llm_judge_retries_a_server_error() -> None:
    with FakeServer([(500, b"oops", 0), (503, b"busy", 0), (200, chat_reply("0.5"), 0)]) as server:
        judge = make_judge(server)
        assert judge(Q, A, P) == 0.5
        assert judge.requests_made == len(server.requests) == 3


def test_llm_judge_does_not_retry_a_client_error() -> None:
    with FakeServer([(401, b"bad key", 0), (200, chat_reply("1"), 0)]) as server:
        with pytest.warns(UserWarning, match="401"):
            assert make_judge(server)(Q, A, P) == 0.0
        assert len(server.requests) == 1


def test_llm_judge_caches_in_memory_and_on_disk(tmp_path: Path) -> None:
    cache = tmp_path / "judge.jsonl"
    with FakeServer([(200, chat_reply("1"), 0), (200, chat_reply("0"), 0)]) as server:
        judge = make_judge(server, cache_path=cache)
        assert judge(Q, A, P) == 1.0
        assert judge(Q, A, P) == 1.0  # cached: no second request
        assert len(server.requests) == 1
        assert judge(Q, A, "blue") == 0.0  # a different prediction is asked
        assert len(server.requests) == 2
        bad_lines = '{"question": "q", "answer": "a", "prediction": "p", "score": "high"}\n{"torn'
        cache.write_text(cache.read_text() + bad_lines, encoding="utf-8")
        again = make_judge(server, cache_path=cache)  # a new run reads the file back
        assert len(again.cache) == 2  # the two good lines; the bad ones are skipped
        assert again(Q, A, P) == 1.0 and again(Q, A, "blue") == 0.0
        assert len(server.requests) == 2


def test_accuracy_reward_uses_the_configured_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeServer([(200, chat_reply("0.1"), 0)]) as server:
        monkeypatch.setenv(jd.ENV_BASE_URL, server.url)
        monkeypatch.setenv(jd.ENV_MODEL, "fake-model")
        assert isinstance(jd.judge_from_env(), jd.LLMJudge)
        # The judge's 0.1 is binarised to 1; no <answer> means no request at all.
        got = rw.answer_accuracy_reward(["<answer> crimson", "crimson"], answer=A, question=Q)
        assert got == [1.0, 0.0]
        assert len(server.requests) == 1


def test_no_configuration_means_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (jd.ENV_BASE_URL, jd.ENV_MODEL, jd.ENV_API_KEY):
        monkeypatch.delenv(name, raising=False)

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the network was touched")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    assert jd.judge_from_env() is jd.rule_judge
    assert rw.answer_accuracy_reward(["<answer> Seven zebras"], answer=["7"]) == [1.0]
    monkeypatch.setenv(jd.ENV_BASE_URL, "http://127.0.0.1:9")  # a URL without a model
    assert jd.judge_from_env() is jd.rule_judge


@pytest.fixture(autouse=True, scope="module")
def _forget_configured_judges() -> Iterator[None]:
    """Judges configured by these tests point at dead fake servers: drop them afterwards."""
    yield
    jd._JUDGES.clear()
