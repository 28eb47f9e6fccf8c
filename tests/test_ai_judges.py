"""AI judges: the local transformers backend on a tiny random chat model with a real chat template, and
the HTTP backend against a real `transformers serve` process on loopback."""

from __future__ import annotations

import math

import pytest
import torch
from judge_helpers import fixed_answer_phi, free_port, random_llama_chat, start_transformers_serve

from rlhfkit.judges.ai import JudgeError, Query, combine_orders, judge_messages
from rlhfkit.judges.constitution import load_constitution
from rlhfkit.judges.http import HttpJudge, label_probabilities, parse_choice
from rlhfkit.judges.local import LocalJudge, label_token_ids

PRINCIPLE = load_constitution().get("harmlessness")
PROMPT = "Question: How do I cook rice?\nAnswer:"
SAFE, UNSAFE, THIRD = " Rinse the rice first.", " Leave the pot on high and walk away.", " Use a rice cooker."


def test_combine_orders_averages_positions_back_to_the_query_order():
    """Order (0, 1) says P(A)=0.8, so response 0 gets 0.8; order (1, 0) says P(A)=0.6, i.e. response 1 gets
    0.6 and response 0 gets 0.4. Averaged: response 0 = (0.8 + 0.4) / 2 = 0.6, response 1 = 0.4. Both orders
    picked the first-shown response, which is a different response in each: disagreement 1."""
    verdict = combine_orders([[0.8, 0.2], [0.6, 0.4]], [[0, 1], [1, 0]])
    assert verdict.probabilities == pytest.approx([0.6, 0.4]) and verdict.order_disagreement == 1.0
    agreeing = combine_orders([[0.8, 0.2], [0.3, 0.7]], [[0, 1], [1, 0]])
    assert agreeing.probabilities == pytest.approx([0.75, 0.25]) and agreeing.order_disagreement == 0.0


def test_parse_choice_and_label_probabilities():
    assert [parse_choice(t, 2) for t in ("B", " b.", "[A] is safer", "Answer: B", "leg", "C", "")] == \
        [1, 1, 0, 1, None, None, None]
    # exp(-0.1) + exp(-3) for "A" / " A", exp(-2) for "B"; "x" is ignored
    probs = label_probabilities([{"token": "A", "logprob": -0.1}, {"token": " A", "logprob": -3.0},
                                 {"token": "B", "logprob": -2.0}, {"token": "x", "logprob": -0.5}], 2)
    assert probs == pytest.approx([math.exp(-0.1) + math.exp(-3.0), math.exp(-2.0)])
    assert label_probabilities([{"token": "x", "logprob": 0.0}], 2) is None


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory):
    return random_llama_chat(tmp_path_factory.mktemp("llama-chat"))


def test_local_judge_reads_the_label_logprobs_under_the_chat_template(chat_model):
    """The judge's number is the hand-computed one: render each order with the chat template, one forward
    pass, softmax of the label tokens' log-sum-exp, renormalised over the labels, averaged over orders."""
    judge = LocalJudge(str(chat_model), device="cpu")
    query = Query(PROMPT, [SAFE, UNSAFE], PRINCIPLE)
    verdict = judge.judge_many([query])[0]

    tok, model = judge.tokenizer, judge.model
    labels = label_token_ids(tok, 2)
    by_hand = []
    for order in ([0, 1], [1, 0]):
        text = tok.apply_chat_template(judge_messages(query, order), tokenize=False, add_generation_prompt=True)
        assert text.endswith("<|im_start|>assistant\n") and "[A]" in text
        ids = torch.tensor([tok.encode(text, add_special_tokens=False)])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, -1], -1)
        mass = [torch.logsumexp(logp[ids_], 0).exp().item() for ids_ in labels]
        p_first_shown = mass[0] / sum(mass)
        by_hand.append(p_first_shown if order == [0, 1] else 1 - p_first_shown)
    assert verdict.probabilities[0] == pytest.approx(sum(by_hand) / 2, abs=1e-5)
    assert sum(verdict.probabilities) == pytest.approx(1.0)

    # swapping the responses swaps the probabilities (both orders are always asked); a batch of several
    # queries of different lengths (right padding) gives the same numbers as one at a time
    swapped = judge.judge_many([Query(PROMPT, [UNSAFE, SAFE], PRINCIPLE)])[0]
    assert swapped.probabilities == pytest.approx(verdict.probabilities[::-1], abs=1e-5)
    three = Query(PROMPT, [SAFE, UNSAFE, THIRD], PRINCIPLE)
    batch = judge.judge_many([three, query, Query(PROMPT + " Quickly?", [UNSAFE, THIRD], PRINCIPLE)])
    assert batch[1].probabilities == pytest.approx(verdict.probabilities, abs=1e-5)
    assert len(batch[0].probabilities) == 3 and batch[0].order_disagreement in (0.0, 1.0)


def test_a_model_without_a_chat_template_is_refused(tmp_path, chat_model):
    import shutil

    from rlhfkit.errors import ConfigError

    plain = tmp_path / "plain"
    shutil.copytree(chat_model, plain)
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    config = (plain / "tokenizer_config.json")
    config.write_text(config.read_text().replace('"chat_template"', '"unused_template"'))
    with pytest.raises(ConfigError, match="no chat template"):
        LocalJudge(str(plain), device="cpu")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    models = {"A": fixed_answer_phi(root / "always-a", "A"), "garbage": fixed_answer_phi(root / "always-x", "x")}
    port = free_port()
    proc = start_transformers_serve(port, root / "serve.log")
    yield f"http://127.0.0.1:{port}/v1", models, proc
    proc.terminate()
    proc.wait(30)


def test_http_judge_against_transformers_serve(server, tmp_path):
    """A judge that always answers "A" prefers whichever response is shown first: averaged over the two
    orders that is 0.5 / 0.5, and the orders disagree every time. The second run is served from the cache."""
    url, models, _ = server
    cache = tmp_path / "cache"
    judge = HttpJudge(url, model=str(models["A"]), max_tokens=1, cache_dir=str(cache), concurrency=2)
    queries = [Query(PROMPT, [SAFE, UNSAFE], PRINCIPLE), Query(PROMPT, [SAFE, UNSAFE, THIRD], PRINCIPLE)]
    verdicts = judge.judge_many(queries)
    assert verdicts[0].probabilities == pytest.approx([0.5, 0.5]) and verdicts[0].order_disagreement == 1.0
    assert verdicts[1].probabilities == pytest.approx([0.5, 0.0, 0.5])  # "A" is response 0, then response 2
    assert judge.requests_sent == 4
    again = HttpJudge(url, model=str(models["A"]), max_tokens=1, cache_dir=str(cache))
    assert [v.probabilities for v in again.judge_many(queries)] == [v.probabilities for v in verdicts]
    assert again.requests_sent == 0


def test_http_judge_errors_are_clear_and_nothing_is_cached(server, tmp_path):
    url, models, _ = server
    cache = tmp_path / "cache"
    query = Query(PROMPT, [SAFE, UNSAFE], PRINCIPLE)
    with pytest.raises(JudgeError, match=r"answered 'x', which is not one of A, B"):
        HttpJudge(url, model=str(models["garbage"]), max_tokens=1, cache_dir=str(cache)).judge_many([query])
    assert not list(cache.rglob("*.json"))
    with pytest.raises(JudgeError, match=r"no answer within 0.001 s, after 2 attempts"):
        HttpJudge(url, model=str(models["A"]), timeout=0.001, retries=1).judge_many([query])
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(JudgeError, match=r"cannot connect .* after 2 attempts; is it running\?"):
        HttpJudge(dead, model="m", retries=1).judge_many([query])


def test_grades_verdict_is_bradley_terry_on_the_grades():
    """Grades 5 and 3 at temperature 0.5: P(first) = sigmoid((5 - 3) / 0.5) = sigmoid(4) = e^4 / (1 + e^4)
    = 54.598 / 55.598 = 0.98201. Three responses are a softmax: grades 2, 2, 1 at temperature 1 give
    e^2 : e^2 : e^1, i.e. 1 / (2 + 1/e) = 0.42232 for each of the first two."""
    from rlhfkit.judges.ai import grades_verdict

    assert grades_verdict([5.0, 3.0], 0.5).probabilities[0] == pytest.approx(0.98201, abs=1e-5)
    three = grades_verdict([2.0, 2.0, 1.0], 1.0)
    assert three.probabilities[:2] == pytest.approx([0.42232, 0.42232], abs=1e-5)
    assert three.order_disagreement == 0.0


def test_local_judge_in_grade_mode_reads_each_responses_digits(chat_model, tmp_path):
    """Grade mode, by hand: each response alone under `grade_messages`, the next-token probabilities of the
    digits 1-6 renormalised, the expected grade, then sigmoid((g0 - g1) / T). A folder's judge.json turns
    the mode on by itself."""
    import json
    import shutil

    from rlhfkit.judges.ai import GRADES, grade_messages

    graded = tmp_path / "graded"
    shutil.copytree(chat_model, graded)
    (graded / "judge.json").write_text(json.dumps({"mode": "grade", "temperature": 0.25}))
    judge = LocalJudge(str(graded), device="cpu")
    assert judge.mode == "grade" and judge.temperature == 0.25
    query = Query(PROMPT, [SAFE, UNSAFE], PRINCIPLE)
    verdict = judge.judge_many([query, Query(PROMPT, [UNSAFE, SAFE, THIRD], PRINCIPLE)])

    tok, model = judge.tokenizer, judge.model
    digits = label_token_ids(tok, len(GRADES), GRADES)
    expected = []
    for i in range(2):
        text = tok.apply_chat_template(grade_messages(query, i), tokenize=False, add_generation_prompt=True)
        assert PRINCIPLE.compare in text and "[A]" in text and "[B]" not in text
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([tok.encode(text, add_special_tokens=False)])).logits[0, -1], -1)
        mass = [torch.logsumexp(logp[ids], 0).exp().item() for ids in digits]
        expected.append(sum((d + 1) * m for d, m in enumerate(mass)) / sum(mass))
    p0 = 1 / (1 + math.exp(-(expected[0] - expected[1]) / 0.25))
    assert verdict[0].probabilities[0] == pytest.approx(p0, abs=1e-4)
    # the same response gets the same grade in another query: the three-way verdict's odds match
    assert verdict[1].probabilities[1] / verdict[1].probabilities[0] == pytest.approx(p0 / (1 - p0), rel=1e-3)
    with pytest.raises(Exception, match="judge mode"):
        LocalJudge(str(chat_model), device="cpu", mode="vote")
