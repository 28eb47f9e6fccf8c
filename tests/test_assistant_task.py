"""Tests for ``builtin:assistant`` (the package rlhfkit.tasks.assistant): topics, prompts, styles, gold judge,
simulated annotators.

Fast (a few seconds) and standard-library only. Not covered here: how well a trained model learns the
domain; that belongs to the end-to-end tests of the trainers.
"""

from __future__ import annotations

import doctest
import math
import random
import statistics
import subprocess
import sys
from collections import Counter

import pytest

from rlhfkit.tasks import assistant as A
from rlhfkit.tasks import load_task
from rlhfkit.tasks.assistant import annotators, content, responses, rubric

N_PROMPTS = 200


@pytest.fixture(scope="module")
def styled() -> list[dict[str, str]]:
    """For each of 200 train prompts, one completion per style."""
    rng = random.Random(1234)
    rows = []
    for p in A.prompts(N_PROMPTS, seed=7):
        row = {"prompt": p["prompt"]}
        for style in A.STYLES:
            row[style] = A.response(p["prompt"], style, rng)
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------- topics


def test_load_task():
    assert load_task("builtin:assistant") is A
    assert load_task("assistant") is A
    with pytest.raises(KeyError, match="builtin:assistant"):
        load_task("builtin:nope")


def test_package_reexports_and_layering():
    """Every public name is reachable as ``assistant.NAME``; the task layer needs no other rlhfkit module."""
    for name in A.__all__:
        assert getattr(A, name) is not None, name
    assert A.score is rubric.score and A.panel is annotators.panel and A.response is responses.response
    assert A.TOPICS is content.TOPICS
    code = (
        "import sys, rlhfkit.tasks.assistant\n"
        "bad = [m for m in sys.modules if m == 'torch' or (m.startswith('rlhfkit.')"
        " and not m.startswith(('rlhfkit.tasks', 'rlhfkit.errors')))]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_topics_cover_seeds_and_are_complete():
    assert len(A.TOPICS) >= 30
    names = {t.name for t in A.TOPICS}
    assert len(names) == len(A.TOPICS)
    assert {"rural_ev", "yard_snake", "garden_pests", "rural_wifi"} <= names
    for t in A.TOPICS:
        assert len(t.questions) >= 6 and len(set(t.questions)) == len(t.questions)
        assert len(t.facts) >= 4 and len(t.unsafe_tips) >= 1
        for f in t.facts:
            assert f.keywords and A.features(A.format_prompt(t.questions[0]), " " + f.text)["facts"] == 1
        for tip in t.unsafe_tips:
            assert A.features("", tip)["unsafe"] >= 1, tip
    texts = [q for t in A.TOPICS for q in t.questions] + [f.text for t in A.TOPICS for f in t.facts]
    assert all(s.isascii() for s in texts)


def test_lexicons_do_not_fire_on_good_text():
    for t in A.TOPICS:
        prompt = A.format_prompt(t.questions[0])
        for f in t.facts:
            feats = A.features(prompt, " " + f.text)
            assert feats["other_facts"] == 0, f.text  # fact keywords are specific to their topic
            assert feats["loaded"] == feats["unsafe"] == feats["flattery"] == feats["filler"] == 0, f.text


def test_topic_of():
    for t in A.TOPICS:
        for q in t.questions:
            assert A.topic_of(q) is t
            assert A.topic_of(A.format_prompt(q)) is t
    assert A.topic_of("my wifi router is slow behind thick walls").name == "rural_wifi"
    assert A.topic_of("") is None
    assert A.topic_of("zzz qqq") is None


def test_prompts_split_disjoint_deterministic_and_cycling():
    train = A.prompts(300, seed=3)
    evl = A.prompts(300, seed=3, split="eval")
    assert train == A.prompts(300, seed=3)
    assert train != A.prompts(300, seed=4)
    assert not {p["prompt"] for p in train} & {p["prompt"] for p in evl}
    first = A.prompts(len(A.TOPICS), seed=5)
    assert {p["topic"] for p in first} == {t.name for t in A.TOPICS}
    for p in train[:50]:
        assert p["prompt"].startswith("Question: ") and p["prompt"].endswith("\nAnswer:")
        assert A.topic_of(p["prompt"]).name == p["topic"]
    with pytest.raises(ValueError):
        A.prompts(3, split="test")


def test_demonstrations_mix_and_format():
    demos = A.demonstrations(1000, seed=2)
    counts = Counter(d["style"] for d in demos)
    for style, w in A.DEFAULT_STYLE_WEIGHTS.items():
        assert abs(counts[style] / 1000 - w) < 0.02
    assert set(counts) == set(A.STYLES)
    for d in demos:
        assert d["completion"].startswith(" ") and not d["completion"].startswith("  ")
        assert not d["completion"].endswith("\n") and d["completion"].isascii()
        assert d["topic"] == A.topic_of(d["prompt"]).name
    assert demos == A.demonstrations(1000, seed=2)
    only = A.demonstrations(20, style_weights={"helpful": 1.0})
    assert {d["style"] for d in only} == {"helpful"}


def test_corpus_covers_everything():
    texts = A.corpus(seed=0, n=500)
    assert len(texts) == 500
    joined = "\n".join(texts)
    for t in A.TOPICS:
        for q in t.questions:  # both splits
            assert q in joined
    assert all(t.startswith("Question: ") and "\nAnswer: " in t for t in texts)


def test_response_lengths(styled):
    for row in styled:
        for style in A.STYLES:
            n = len(row[style].split())
            hi = 95 if style == "padded" else 65
            assert 10 <= n <= hi, (style, row[style])


# ---------------------------------------------------------------------------------------------- judge


def test_docstring_examples():
    """The usage example of the package docstring and the rubric's hand example run as written."""
    for module in (A, content, responses, rubric, annotators):
        assert doctest.testmod(module).failed == 0, module.__name__
    assert doctest.testmod(A).attempted > 0 and doctest.testmod(rubric).attempted > 0
    p = A.format_prompt("How can I fix a leaky faucet?")
    plain = " Turn off the water supply under the sink first. A worn washer is the usual cause of drips."
    s0, s1 = A.score(p, plain), A.score(p, " Great question!" + plain)
    assert s0.helpfulness == s1.helpfulness == 1.0
    assert s1.clarity == pytest.approx(s0.clarity - 0.2)
    assert s1.total == pytest.approx(s0.total - A.WEIGHTS["clarity"] * 0.2)
    assert A.features(p, " Great question!" + plain)["flattery"] == 1


def test_style_ordering(styled):
    means = {s: statistics.mean(A.gold_reward(r["prompt"], r[s]) for r in styled) for s in A.STYLES}
    order = ["helpful", "padded", "flattering", "off_topic", "rant", "unsafe"]
    for better, worse in zip(order, order[1:]):
        assert means[better] > means[worse] + 0.03, means
    for style in A.STYLES[1:]:
        wins = sum(
            A.gold_reward(r["prompt"], r["helpful"]) > A.gold_reward(r["prompt"], r[style]) for r in styled
        )
        assert wins / len(styled) >= 0.95, style


def test_criteria_per_style(styled):
    def mean(style: str, crit: str) -> float:
        return statistics.mean(getattr(A.score(r["prompt"], r[style]), crit) for r in styled)

    harm = {s: mean(s, "harmlessness") for s in A.STYLES}
    assert min(harm, key=harm.get) == "unsafe"
    neut = {s: mean(s, "neutrality") for s in A.STYLES if s != "unsafe"}
    assert min(neut, key=neut.get) == "rant"
    assert mean("padded", "clarity") < mean("helpful", "clarity") - 0.3
    assert mean("off_topic", "helpfulness") == 0.0
    assert mean("helpful", "helpfulness") == 1.0


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "asdf qwe zzz",
        "!!!",
        "\n\n",
        "Question: Answer:",
        "the the the the",
        "x" * 10000,
        " ".join(["Put the router up high and near the middle of the house."] * 500),
    ],
)
def test_scorer_robust(text):
    p = A.format_prompt(A.TOPICS[3].questions[0])
    for prompt in (p, "", "garbage prompt"):
        s = A.score(prompt, text)
        for v in s.as_dict().values():
            assert math.isfinite(v) and 0.0 <= v <= 1.0
        assert set(s.as_dict()) == {*A.CRITERIA, "total"}


def test_scorer_low_on_garbage():
    p = A.format_prompt(A.TOPICS[3].questions[0])
    assert A.gold_reward(p, "") == 0.0
    assert A.gold_reward(p, " asdf qwe zzz") < 0.05
    assert A.gold_reward(p, " router router router middle house ghz") < 0.1
    assert A.gold_reward(p, " router ghz ethernet firmware microwaves extender.") < 0.3  # keyword salad
    assert A.gold_reward(p, " Ethernet. Firmware. Microwaves.") < 0.1
    long = " " + " ".join(["Put the router up high and near the middle of the house."] * 500)
    assert A.gold_reward(p, long) < 0.1
    assert A.score(p, long).clarity == 0.0


def test_features_keys():
    f = A.features(A.format_prompt(A.TOPICS[0].questions[0]), " Great question! Check the range.")
    assert {"words", "flattery", "facts"} <= set(f)
    assert f["words"] == 5 and f["flattery"] == 1 and f["facts"] == 1


# ---------------------------------------------------------------------------------------------- annotators


def _pairs(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    out = []
    for p in A.prompts(n, seed=seed):
        s1, s2 = rng.sample(A.STYLES, 2)
        out.append((p["prompt"], A.response(p["prompt"], s1, rng), A.response(p["prompt"], s2, rng)))
    return out


def _agreement(ann: A.SimulatedAnnotator, pairs) -> float:
    agree = total = 0
    for prompt, a, b in pairs:
        ga, gb = A.gold_reward(prompt, a), A.gold_reward(prompt, b)
        if ga == gb:
            continue
        total += 1
        agree += ann.compare(prompt, a, b).choice == (0 if ga > gb else 1)
    return agree / total


def test_noiseless_annotator_agrees_with_gold():
    assert _agreement(A.SimulatedAnnotator(), _pairs(300)) == 1.0


def test_noisy_annotator_agreement():
    # A random answer is right half the time: agreement = (1 - 0.25) + 0.25 / 2 = 0.875.
    assert _agreement(A.SimulatedAnnotator(noise=0.25, seed=11), _pairs(2000, seed=1)) == pytest.approx(
        0.875, abs=0.05
    )


def test_length_and_flattery_bias(styled):
    length, flat = A.SimulatedAnnotator(bias="length"), A.SimulatedAnnotator(bias="flattery")
    padded_wins = flat_wins = 0
    for r in styled:
        p = r["prompt"]
        assert A.gold_reward(p, r["helpful"]) > A.gold_reward(p, r["padded"])
        padded_wins += length.compare(p, r["helpful"], r["padded"]).choice == 1
        flat_wins += flat.compare(p, r["flattering"], r["helpful"]).choice == 0
    assert padded_wins / len(styled) > 0.6
    assert flat_wins / len(styled) > 0.6


def test_judgment_fields():
    prompt, a, b = _pairs(1, seed=5)[0]
    j = A.SimulatedAnnotator().compare(prompt, a, b)
    assert isinstance(j, A.SimulatedJudgment)
    assert j.outcome in ("a", "b") and j.choice in (0, 1)
    assert j.ranking == (j.choice, 1 - j.choice)
    assert set(j.criteria) == set(A.CRITERIA) and set(j.criteria.values()) <= {"a", "b", "tie"}
    assert any(label in j.rationale for label in A.CRITERIA_LABELS.values())
    assert 5.0 <= j.seconds <= 60.0

    p = A.prompts(1)[0]["prompt"]
    rng = random.Random(0)
    helpful, rant, unsafe = (A.response(p, s, rng) for s in ("helpful", "rant", "unsafe"))
    j = A.SimulatedAnnotator().compare(p, rant, helpful)
    assert j.choice == 1 and j.criteria["neutrality"] == "b"
    assert "I selected B" in j.rationale and "Balance & Neutrality" in j.rationale
    assert "inflammatory" in j.rationale
    j = A.SimulatedAnnotator().compare(p, helpful, unsafe)
    assert j.choice == 0 and "Harmlessness" in j.rationale and "unsafe" in j.rationale


def test_tie_and_both_bad():
    p = A.prompts(1)[0]["prompt"]
    rng = random.Random(0)
    h1, h2 = A.response(p, "helpful", rng), A.response(p, "helpful", rng)
    j = A.SimulatedAnnotator(tie_margin=0.5).compare(p, h1, h2)
    assert j.outcome == "tie" and j.choice is None
    u1, u2 = A.response(p, "unsafe", rng), A.response(p, "unsafe", rng)
    j = A.SimulatedAnnotator(both_bad_below=0.5).compare(p, u1, u2)
    assert j.outcome == "both_bad" and j.choice is None


def test_rank():
    p = A.prompts(1, seed=9)[0]["prompt"]
    rng = random.Random(3)
    resp = [A.response(p, s, rng) for s in A.STYLES]
    j = A.SimulatedAnnotator().rank(p, resp)
    assert sorted(j.ranking) == list(range(len(resp)))
    assert j.ranking[0] == 0 and j.ranking[-1] == A.STYLES.index("unsafe")
    assert j.outcome == "ranking" and j.choice == 0
    noisy = A.SimulatedAnnotator(noise=1.0, seed=2)
    for _ in range(5):
        assert sorted(noisy.rank(p, resp).ranking) == list(range(len(resp)))


def test_annotator_determinism_and_panel():
    pairs = _pairs(50, seed=2)

    def run(ann: A.SimulatedAnnotator) -> list:
        return [(j.choice, j.seconds) for j in (ann.compare(*x) for x in pairs)]

    assert run(A.SimulatedAnnotator(noise=0.5, seed=4)) == run(A.SimulatedAnnotator(noise=0.5, seed=4))
    assert run(A.SimulatedAnnotator(noise=0.5, seed=4)) != run(A.SimulatedAnnotator(noise=0.5, seed=5))
    team = A.panel(3, noise=0.1, bias="length", seed=10, tie_margin=0.01)
    assert [a.name for a in team] == ["sim-0", "sim-1", "sim-2"]
    assert len({a.seed for a in team}) == 3
    assert all(a.bias == "length" and a.noise == 0.1 and a.tie_margin == 0.01 for a in team)
    with pytest.raises(ValueError):
        A.SimulatedAnnotator(bias="vibes")
