"""RLAIF: an AI judge fills a campaign through the feedback service; soft labels reach the export and the
reward model's loss."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

sys.path.insert(0, str(Path(__file__).parent / "feedback"))
from feedback_helpers import synthetic_groups  # noqa: E402
from judge_helpers import random_llama_chat  # noqa: E402

from rlhfkit.feedback import service  # noqa: E402
from rlhfkit.feedback.campaigns import CampaignSpec, create_campaign  # noqa: E402
from rlhfkit.feedback.export import preference_rows  # noqa: E402
from rlhfkit.feedback.simulate import fill_campaign  # noqa: E402
from rlhfkit.feedback.store import Judgment, Store  # noqa: E402
from rlhfkit.judges.constitution import load_constitution  # noqa: E402
from rlhfkit.judges.local import LocalJudge  # noqa: E402
from rlhfkit.math.losses import soft_bradley_terry_loss  # noqa: E402
from rlhfkit.pipelines.ai_feedback import fill_with_judge  # noqa: E402
from rlhfkit.tasks import assistant  # noqa: E402
from rlhfkit.tasks.assistant import panel  # noqa: E402


def test_soft_bradley_terry_by_hand():
    """d = 0: sigma(d) = 1/2, so the loss is -t log 1/2 - (1 - t) log 1/2 = ln 2 whatever t is.
    t = 3/4, d = ln 3: sigma(d) = 3/4, the loss is the entropy -3/4 ln 3/4 - 1/4 ln 1/4 = 0.5623, and the
    gradient -t (1 - sigma(d)) + (1 - t) sigma(d) = -3/16 + 3/16 = 0: a soft label stops at its own odds."""
    d = torch.tensor([0.0, math.log(3.0)], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0.9, 0.75], dtype=torch.float64)
    loss = soft_bradley_terry_loss(d, torch.zeros_like(d), target)
    assert_close(loss, torch.tensor([math.log(2), -0.75 * math.log(0.75) - 0.25 * math.log(0.25)], dtype=torch.float64))
    loss[1].backward()
    assert abs(d.grad[1].item()) < 1e-12
    with pytest.raises(ValueError, match="probabilities"):
        soft_bradley_terry_loss(d, d, torch.tensor([1.5, 0.5], dtype=torch.float64))


def test_the_reward_model_uses_label_confidence_and_not_the_margin_of_a_soft_row():
    """Two pairs with the same reward gap d = 1: a hard row with margin 0.5 costs -log sigma(1 - 0.5); a soft
    row with c = 0.8 (and the export's margin 2c - 1 = 0.6, which must not count again) costs
    -0.8 log sigma(1) - 0.2 log sigma(-1)."""
    from rlhfkit.trainers.rm import Group, RMConfig, comparison_loss

    rewards = torch.tensor([[[1.0], [0.0]], [[1.0], [0.0]]])  # (B=2, K=2, heads=1)
    groups = [Group([0, 1], [0, 1], 0.5, None, None), Group([2, 3], [0, 1], 0.6, None, None, confidence=0.8)]
    loss = comparison_loss(rewards, groups, RMConfig())
    sig = torch.sigmoid
    expected = torch.stack([-torch.log(sig(torch.tensor(0.5))),
                            -0.8 * torch.log(sig(torch.tensor(1.0))) - 0.2 * torch.log(sig(torch.tensor(-1.0)))])
    assert_close(loss, expected)
    hard_only = comparison_loss(rewards, groups, RMConfig(soft_labels=False))
    assert_close(hard_only[1], -torch.log(sig(torch.tensor(1.0 - 0.6))))


def test_a_label_confidence_out_of_range_names_file_and_line(tmp_path):
    from rlhfkit.data.records import load_records
    from rlhfkit.errors import DataError

    path = tmp_path / "prefs.jsonl"
    path.write_text('{"prompt": "p", "chosen": "a", "rejected": "b", "label_confidence": 0.8}\n'
                    '{"prompt": "p", "chosen": "a", "rejected": "b", "label_confidence": 0.3}\n')
    with pytest.raises(DataError, match=rf"{path}:2: .*label_confidence"):
        load_records(str(path), "preferences")


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    return LocalJudge(str(random_llama_chat(tmp_path_factory.mktemp("chat"))), device="cpu")


def campaign(store: Store, name: str, overlap: int = 1, k: int = 2) -> None:
    create_campaign(store, CampaignSpec(name=name, k=k, overlap=overlap, require_rationale="always"),
                    synthetic_groups(6, k))


def test_an_ai_judge_fills_a_campaign_through_the_service(tmp_path, judge):
    store = Store.open(str(tmp_path / "f.db"))
    campaign(store, "c")
    stats = fill_with_judge(store, "c", judge, load_constitution(), "tiny", batch_size=4, seed=0)
    assert stats["stored"] == 6 and stats["deferred"] == 0 and stats["judgments_per_s"] > 0
    with store.read() as session:
        judgments = session.query(Judgment).all()
        assert {j.annotator.name for j in judgments} == {"ai:tiny"}
        for j in judgments:
            ids = sorted(map(str, j.assignment.order))
            assert sorted(j.probabilities) == ids and sum(j.probabilities.values()) == pytest.approx(1.0)
            best = max(j.probabilities, key=j.probabilities.get)
            assert str(j.ranking[0]) == best and j.rationale and ": Which" in j.principle
            assert j.principle.split(":")[0] in {p.name for p in load_constitution().principles}
    rows = preference_rows(store, "c")
    assert len(rows) == 6
    texts = {}
    with store.read() as session:
        for j in session.query(Judgment).all():
            items = {str(i.response_id): i.response.text for i in j.assignment.task.items}
            chosen = max(j.probabilities, key=j.probabilities.get)
            texts[items[chosen]] = j.probabilities[chosen]
    for row in rows:  # the soft label is the judge's probability, the margin 2c - 1 of the same evidence
        assert row["label_confidence"] == pytest.approx(texts[row["chosen"]], abs=1e-6)
        assert row["margin"] == pytest.approx(2 * row["label_confidence"] - 1, abs=1e-5)
    stats_api = service.campaign_stats(store, "c")
    assert "ai:tiny" in str(stats_api)
    assert fill_with_judge(store, "c", judge, load_constitution(), "tiny")["stored"] == 0  # nothing left
    store.dispose()


def test_people_get_only_the_pairs_the_ai_is_unsure_of(tmp_path, judge):
    store = Store.open(str(tmp_path / "f.db"))
    campaign(store, "probe")
    fill_with_judge(store, "probe", judge, load_constitution(), "tiny", seed=0)
    with store.read() as session:
        confidences = sorted(max(j.probabilities.values()) for j in session.query(Judgment).all())
    threshold = (confidences[2] + confidences[3]) / 2  # three pairs below it, three above
    campaign(store, "mixed")
    stats = fill_with_judge(store, "mixed", judge, load_constitution(), "tiny", threshold=threshold, seed=0)
    assert (stats["stored"], stats["deferred"]) == (3, 3)
    people = fill_campaign(store, "mixed", panel(2, noise=0.0, seed=0), prefix="person-")
    assert people == 3  # overlap 1: the three deferred pairs, and only those
    with store.read() as session:
        by_task: dict[int, list[tuple]] = {}
        for j in session.query(Judgment).all():
            if j.assignment.task.campaign.name == "mixed":
                by_task.setdefault(j.task_id, []).append((j.annotator.name, j.outcome, j.probabilities, j.rationale))
    for judged in by_task.values():
        _, outcome, probabilities, rationale = [j for j in judged if j[0] == "ai:tiny"][0]
        unsure = max(probabilities.values()) < threshold
        assert (outcome == "skip") == unsure and (len(judged) == 2) == unsure
        assert "left to people" in rationale if unsure else outcome == "ranked"
    assert len(preference_rows(store, "mixed")) == 6
    store.dispose()


def test_k_wise_tasks_get_a_full_ranking(tmp_path, judge):
    store = Store.open(str(tmp_path / "f.db"))
    campaign(store, "k3", k=3)
    assert fill_with_judge(store, "k3", judge, load_constitution(), "tiny")["stored"] == 6
    with store.read() as session:
        for j in session.query(Judgment).all():
            assert len(j.ranking) == 3 and [str(r) for r in j.ranking] == sorted(
                j.probabilities, key=lambda r: -j.probabilities[r])
    store.dispose()


def test_the_quickstart_step_returns_the_report_numbers(tmp_path, judge):
    """`ai_feedback` (for the quickstart's --ai-feedback): a campaign over sampled responses, filled by the
    given judge (here the tiny random chat model), exported, measured against gold."""
    import json
    import random

    from rlhfkit.pipelines.ai_feedback import ai_feedback

    rng = random.Random(0)
    samples = tmp_path / "samples.jsonl"
    with samples.open("w") as fh:
        for p in assistant.prompts(8, split="eval"):
            for index, style in enumerate(rng.sample(assistant.STYLES, 2)):
                fh.write(json.dumps({"prompt": p["prompt"], "completion": assistant.response(p["prompt"], style, rng),
                                     "model": "m", "index": index}) + "\n")
    numbers = ai_feedback(samples, tmp_path / "ai.db", tmp_path / "prefs.jsonl", judge, "tiny")
    assert numbers["judgments"] == 8 and 0 <= numbers["agreement_with_gold"] <= 1
    assert numbers["judgments_per_day"] == round(numbers["judgments_per_s"] * 86400)
    assert 0 <= numbers["order_consistency"] <= 1 and numbers["cpu_seconds_per_1000"] > 0
    assert len((tmp_path / "prefs.jsonl").read_text().splitlines()) == 8
