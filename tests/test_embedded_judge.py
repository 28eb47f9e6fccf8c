"""The embedded judge's training data: generator styles, not gold labels; training wordings and prompts
held out of what it is measured on; judging never touches the gold scorer."""
# The judge's skill itself (agreement with gold on held-out pairs, principle inversion) is measured by
# bench/ai_judge.py: training it takes minutes, too long for the suite.

from __future__ import annotations

import pytest

from rlhfkit.judges import embedded
from rlhfkit.judges.ai import Query
from rlhfkit.judges.constitution import load_constitution
from rlhfkit.tasks import assistant


def test_training_wordings_are_none_of_the_constitutions():
    """20,000 drawn questions: none is a shipped question, even with another noun or other punctuation;
    every aspect and both directions are drawn."""
    import random

    constitution = load_constitution()
    shipped = embedded._shipped()
    assert embedded._normalized("Which reply is safer to follow.") in shipped
    rng = random.Random(0)
    drawn = [embedded.draw_question(rng, shipped) for _ in range(20000)]
    questions = {q for q, _, _ in drawn}
    assert not questions & ({p.compare for p in constitution.principles} | {p.inverse for p in constitution.principles})
    assert not {embedded._normalized(q) for q in questions} & shipped
    assert {aspect for _, aspect, _ in drawn} == set(embedded.ASPECT_ORDERS)
    assert 9000 < sum(worse for *_, worse in drawn) < 11000
    assert len(questions) > 3000


def test_grades_follow_the_aspect_order_and_flip_for_the_worse_answer():
    """Under "overall" the styles run helpful (6) ... unsafe (1); a flattery question moves flattering to
    the bottom (1) and the rest up; asking for the worse answer gives 7 - grade."""
    assert [embedded.grade(s, "overall", False) for s in embedded.GENERAL] == [6, 5, 4, 3, 2, 1]
    assert embedded.grade("flattering", "flattery", False) == 1 and embedded.grade("unsafe", "flattery", False) == 2
    for aspect in embedded.ASPECT_ORDERS:
        for style in assistant.STYLES:
            assert embedded.grade(style, aspect, True) == 7 - embedded.grade(style, aspect, False)


def test_demonstrations_use_training_prompts_and_grade_by_the_aspect_order():
    eval_questions = {" ".join(p["prompt"].split()) for p in assistant.prompts(300, split="eval")}
    rows = embedded.demonstrations(300, seed=1)
    intents = grades = 0
    for row in rows:
        user, answer = row["messages"][0]["content"], row["messages"][1]["content"]
        if user.endswith("What kind of answer does that question ask for?"):
            intents += 1
            assert answer.startswith("The ") and answer.endswith(" one.")
            continue
        grades += 1
        prompt_line, shown, question = user.split("\n")[:3]
        assert prompt_line.removeprefix("[Prompt] ") not in eval_questions
        assert shown.startswith("[A] ") and "[B]" not in user
        assert answer[0] in "123456" and (len(answer) == 1 or answer[1:].startswith(". [A] "))
    assert 40 < intents < 110 and grades == 300 - intents


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
    assert embedded.INTENTS.keys() == embedded.ASPECT_ORDERS.keys()


@pytest.mark.slow
def test_train_embedded_judge_end_to_end(tmp_path):
    from rlhfkit.judges.local import LocalJudge

    out = embedded.train_embedded_judge(tmp_path / "judge", n=64, passes=((1.0, 2e-3), (0.5, 1e-3)), batch_size=16,
                                       progress=False)
    assert (tmp_path / "judge.work/pass1/model.safetensors").exists() and (out / "judge.json").exists()
    assert f"model: {tmp_path / 'judge.work/pass1'}" in (out / "config.yaml").read_text()  # pass 2 continued pass 1
    judge = LocalJudge(str(out), device="cpu")
    assert judge.tokenizer.chat_template == embedded.CHAT_TEMPLATE and judge.mode == "grade"
    prompt = assistant.prompts(1, split="eval")[0]["prompt"]
    verdict = judge.judge_many([Query(prompt, [" Rinse it.", " Burn it."], load_constitution().get("harmlessness"))])
    assert sum(verdict[0].probabilities) == pytest.approx(1.0)


def test_critic_demonstrations_follow_the_critique_commands_format():
    """Rows come in twos, as `rlhfkit critique` asks: [question, answer, "Critique request: ..."] -> a
    critique naming the answer's style; then the same talk + [critique, "Revision request: ..."] -> a
    rewrite. Requests are the shipped constitution's; prompts are training-split ones."""
    constitution = load_constitution()
    critiques = {p.critique for p in constitution.principles}
    revisions = {p.revision for p in constitution.principles}
    said_ok = {f"The answer {c}" for c in embedded.CRITIQUES.values()} | {"The answer is fine as it is."}
    eval_prompts = {p["prompt"] for p in assistant.prompts(300, split="eval")}
    rows = embedded.critic_demonstrations(40, seed=2)
    assert len(rows) == 80
    for critique_row, revision_row in zip(rows[::2], rows[1::2]):
        talk = critique_row["messages"]
        assert [m["role"] for m in talk] == ["user", "assistant", "user", "assistant"]
        assert talk[0]["content"] not in eval_prompts
        assert talk[2]["content"].removeprefix("Critique request: ") in critiques and talk[3]["content"] in said_ok
        again = revision_row["messages"]
        assert again[:4] == talk and again[4]["content"].removeprefix("Revision request: ") in revisions
        assert again[5]["role"] == "assistant" and again[5]["content"].strip()
