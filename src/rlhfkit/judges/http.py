"""Any OpenAI-compatible server as an AI judge: vLLM, llama.cpp's server, Ollama, TGI, `transformers serve`.

    judge = HttpJudge("http://127.0.0.1:8000/v1", model="Qwen/Qwen2.5-0.5B-Instruct", cache_dir="runs/judge-cache")
    judge.judge_many([Query(prompt, [a, b], principle)])

Each query is asked in both presentation orders (judges.ai), as one request per order:
`POST {url}/chat/completions` with the judge's messages (`endpoint="chat"`), or `POST {url}/completions`
with the messages written out as plain text (`endpoint="completions"`), at temperature 0. The
probabilities come from the answer's first-token `top_logprobs` where the server returns them
(the labels renormalised among themselves); otherwise the text is parsed: its first letter must be
one of the labels (that label gets probability 1), and the rest of the text is kept as the rationale.

Robustness: a timeout per request; up to `retries` retries with exponential backoff (0.5 s, 1 s, 2 s,
...) on connection errors, timeouts, 429 and 5xx; at most `concurrency` requests in flight; and an
on-disk cache (`cache_dir`, one JSON file per request, keyed by a hash of URL, model and body,
written atomically) so a rerun pays nothing twice. A server that stays down, or an answer that is not
a choice, raises `JudgeError` naming the URL and what came back; since `judge_many` returns only
when every query is answered, a caller stores nothing of a batch that failed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from rlhfkit.judges.ai import (
    LABELS,
    JudgeError,
    Query,
    Verdict,
    check_query,
    combine_orders,
    judge_messages,
    presentation_orders,
)

_FIRST_LETTER = re.compile(r"^\W*(?:answer\W*)?([A-Za-z])(?![A-Za-z])", re.IGNORECASE)


def parse_choice(text: str, k: int) -> int | None:
    """The label a free-text answer starts with ("B", " B.", "[B] because ...", "Answer: B"), or None."""
    match = _FIRST_LETTER.match(text or "")
    if not match:
        return None
    letter = match.group(1).upper()
    return LABELS.index(letter) if letter in LABELS[:k] else None


def label_probabilities(top_logprobs: list[dict[str, Any]], k: int) -> list[float] | None:
    """Label probabilities from an OpenAI `top_logprobs` list of the first token ({"token", "logprob"}), the
    spellings "A", " A" summed; None when no label is among them."""
    mass = [0.0] * k
    for entry in top_logprobs or []:
        token = str(entry.get("token", "")).strip()
        if len(token) == 1 and token.upper() in LABELS[:k]:
            mass[LABELS.index(token.upper())] += math.exp(float(entry["logprob"]))
    return mass if sum(mass) > 0 else None


class HttpJudge:
    """Judge through an OpenAI-compatible HTTP API (see the module docstring)."""

    def __init__(self, url: str, model: str = "", endpoint: str = "chat", timeout: float = 60.0, retries: int = 3,
                 concurrency: int = 4, cache_dir: str | None = None, max_tokens: int = 32, logprobs: bool = True,
                 api_key: str | None = None):
        if endpoint not in ("chat", "completions"):
            raise ValueError(f"endpoint must be 'chat' or 'completions', got {endpoint!r}")
        self.url, self.model, self.endpoint = url.rstrip("/"), model, endpoint
        self.name = model or self.url
        self.timeout, self.retries, self.concurrency = timeout, retries, max(1, concurrency)
        self.cache = Path(cache_dir) if cache_dir else None
        self.max_tokens, self.logprobs = max_tokens, logprobs
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.requests_sent = 0  # requests that reached the network (cache misses), for audits and tests

    def _body(self, query: Query, order: list[int]) -> tuple[str, dict[str, Any]]:
        messages = judge_messages(query, order)
        body: dict[str, Any] = {"model": self.model, "temperature": 0, "max_tokens": self.max_tokens}
        if self.endpoint == "chat":
            body["messages"] = messages
            if self.logprobs:
                body.update(logprobs=True, top_logprobs=5)
            return "/chat/completions", body
        body["prompt"] = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        if self.logprobs:
            body["logprobs"] = 5
        return "/completions", body

    def _post(self, client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """One request with retries and backoff; the parsed JSON answer."""
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(0.5 * 2 ** (attempt - 1))
            try:
                self.requests_sent += 1
                res = client.post(self.url + path, json=body, headers=self._headers, timeout=self.timeout)
            except httpx.TimeoutException:
                problem = f"no answer within {self.timeout:g} s"
                continue
            except httpx.TransportError as exc:
                problem = f"cannot connect ({exc.__class__.__name__}: {exc})"
                continue
            if res.status_code == 429 or res.status_code >= 500:
                problem = f"HTTP {res.status_code}: {res.text[:200]}"
                continue
            if res.status_code != 200:
                raise JudgeError(f"judge server {self.url}{path} refused the request: HTTP {res.status_code}: "
                                 f"{res.text[:300]}")
            try:
                return res.json()
            except ValueError:
                raise JudgeError(f"judge server {self.url}{path} answered something that is not JSON: "
                                 f"{res.text[:200]!r}") from None
        raise JudgeError(f"judge server {self.url}{path}: {problem}, after {self.retries + 1} attempts; is it running?")

    def _ask(self, client: httpx.Client, query: Query, order: list[int]) -> tuple[list[float], str]:
        """(label probabilities, rationale) for one order: from the cache, else from the server. Only an
        answer that holds a choice is cached."""
        path, body = self._body(query, order)
        key = hashlib.sha256(json.dumps([self.url, path, body], sort_keys=True).encode()).hexdigest()
        file = self.cache / key[:2] / f"{key}.json" if self.cache else None
        if file is not None and file.is_file():
            return self._read(json.loads(file.read_text()), len(order), self.url + path)
        answer = self._post(client, path, body)
        read = self._read(answer, len(order), self.url + path)
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp = file.with_name(f".{file.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(answer))
            tmp.replace(file)
        return read

    def _read(self, answer: dict[str, Any], k: int, where: str) -> tuple[list[float], str]:
        """(label probabilities, rationale) from one answer; JudgeError if it holds no choice."""
        try:
            choice = answer["choices"][0]
            text = choice["message"]["content"] if self.endpoint == "chat" else choice["text"]
        except (KeyError, IndexError, TypeError):
            raise JudgeError(f"judge server {where} answered without choices[0] text: {json.dumps(answer)[:200]}") from None
        content = (choice.get("logprobs") or {}).get("content") if self.endpoint == "chat" else None
        if content:
            probs = label_probabilities(content[0].get("top_logprobs") or [], k)
        else:
            tops = (choice.get("logprobs") or {}).get("top_logprobs") if self.endpoint == "completions" else None
            probs = label_probabilities([{"token": t, "logprob": lp} for t, lp in (tops[0] or {}).items()], k) if tops else None
        picked = parse_choice(text or "", k)
        if probs is None:
            if picked is None:
                raise JudgeError(f"judge server {where} answered {str(text)[:80]!r}, which is not one of "
                                 f"{', '.join(LABELS[:k])}")
            probs = [1.0 if i == picked else 0.0 for i in range(k)]
        rationale = _FIRST_LETTER.sub("", text or "", count=1).strip(" .:-\n") if picked is not None else ""
        return probs, rationale

    def judge_many(self, queries: list[Query]) -> list[Verdict]:
        for query in queries:
            check_query(query)
        jobs = [(qi, order) for qi, q in enumerate(queries) for order in presentation_orders(len(q.responses))]
        with httpx.Client() as client, ThreadPoolExecutor(self.concurrency) as pool:
            answers = list(pool.map(lambda job: self._ask(client, queries[job[0]], job[1]), jobs))
        verdicts = []
        for qi in range(len(queries)):
            mine = [(a, order) for a, (j, order) in zip(answers, jobs) if j == qi]
            rationale = next((r for (_, r), _ in mine if r), "")
            verdicts.append(combine_orders([p for (p, _), _ in mine], [o for _, o in mine], rationale))
        return verdicts
