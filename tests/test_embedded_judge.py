"""The embedded judge's training data: generator styles, not gold labels; training wordings and prompts
held out of what it is measured on; judging never touches the gold scorer."""

from __future__ import annotations

import pytest

from rlhfkit.judges import embedded
from rlhfkit.judges.ai import Query
from rlhfkit.judges.constitution import load_constitution
from rlhfkit.tasks import assistant


def test_training_wordings_are_none_of_the_constitutions():
    constitution = load_constitution()
    shipped = {p.compare for p in constitution.principles} | {p.inverse for p in constitution.principles}
    questions = embedded.training_questions()
    assert not shipped & {q for q, _, _ in questions}
    assert {aspect for _, aspect, _ in questions} == set(embedded.ASPECT_ORDERS)
    assert sum(worse for *_, worse in questions) == len(questions) // 2  # as many "worse" questions as "better"


def test_demonstrations_use_training_prompts_and_label_by_the_aspect_order():
    eval_questions = {p["prompt"] for p in assistant.prompts(300, split="eval")}
    rows = embedded.demonstrations(200, seed=1)
    by_question = {q: (aspect, worse) for q, aspect, worse in embedded.training_questions()}
    firsts = 0
    for row in rows:
        user, answer = row["messages"][0]["content"], row["messages"][1]["content"]
        question, prompt_line = user.split("\n")[:2]
        assert prompt_line.removeprefix("[Prompt] ") not in {" ".join(q.split()) for q in eval_questions}
        assert question in by_question and answer[0] in "AB"
        firsts += answer[0] == "A"
        if by_question[question][1]:
            assert answer in ("A", "B")  # no critique when the question asks for the worse answer
    assert 70 < firsts < 130  # the better answer is shown first about half the time


def test_judging_never_calls_the_gold_scorer(monkeypatch, tmp_path):
    from judge_helpers import random_llama_chat

    from rlhfkit.judges.local import LocalJudge
    from rlhfkit.tasks.assistant import rubric

    def gold(*args, **kwargs):
        raise AssertionError("the gold scorer was called")

    for name in ("_score", "_features", "score", "gold_reward", "features"):
        monkeypatch.setattr(rubric, name, gold)
    judge = LocalJudge(str(random_llama_chat(tmp_path / "m")), device="cpu")
    prompt = assistant.prompts(1, split="eval")[0]["prompt"]
    verdict = judge.judge_many([Query(prompt, [" Rinse it.", " Burn it."], load_constitution().get("harmlessness"))])
    assert len(verdict[0].probabilities) == 2
    assert len(embedded.demonstrations(30)) == 30


@pytest.mark.slow
def test_train_embedded_judge_end_to_end(tmp_path):
    from rlhfkit.judges.local import LocalJudge

    out = embedded.train_embedded_judge(tmp_path / "judge", n=64, epochs=1.0, batch_size=16, progress=False)
    judge = LocalJudge(str(out), device="cpu")
    assert judge.tokenizer.chat_template == embedded.CHAT_TEMPLATE
    prompt = assistant.prompts(1, split="eval")[0]["prompt"]
    verdict = judge.judge_many([Query(prompt, [" Rinse it.", " Burn it."], load_constitution().get("harmlessness"))])
    assert sum(verdict[0].probabilities) == pytest.approx(1.0)
