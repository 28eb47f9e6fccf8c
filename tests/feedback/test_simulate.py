"""`fill_campaign`: many turns per SQLite transaction, the same rules and rows as `next_task` + `submit`.

    pytest tests/feedback/test_simulate.py

The simulated annotators here are stubs that always give the same answer, so every stored row
can be predicted; `test_commands.py` runs the built-in task's real panel end to end.
"""

from collections import Counter
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from sqlalchemy import event, func, select

from rlhfkit.feedback import service, simulate
from rlhfkit.feedback.service import ServiceError
from rlhfkit.feedback.store import Annotator, Assignment, Judgment, Store, Task


@dataclass
class Stub:
    """Always prefers the left response ("a"), or answers `outcome`, with no criteria."""

    name: str
    outcome: str = "a"
    rationale: str = "left reads better"

    def compare(self, prompt: str, a: str, b: str) -> SimpleNamespace:
        return SimpleNamespace(outcome=self.outcome, criteria={}, rationale=self.rationale, seconds=7.0)


def rows(store: Store) -> tuple[list[tuple], list[Judgment], list[Assignment]]:
    with store.read() as s:
        per_task = s.execute(select(Task.id, Task.overlap, Task.n_assigned, Task.gold)).all()
        return per_task, list(s.scalars(select(Judgment))), list(s.scalars(select(Assignment)))


def check_rules(store: Store, n_annotators: int) -> None:
    """Every regular task judged by exactly `overlap` annotators, gold tasks by all, none twice
    by one annotator; each assignment judged; each ranking puts the left response first."""
    tasks, judgments, assignments = rows(store)
    by_task = Counter(j.task_id for j in judgments)
    for task_id, overlap, n_assigned, gold in tasks:
        assert by_task[task_id] == n_assigned == (n_annotators if gold else overlap)
    assert len({(j.task_id, j.annotator_id) for j in judgments}) == len(judgments)
    order = {a.id: a.order for a in assignments}
    assert sorted(order) == sorted(j.assignment_id for j in judgments)
    assert all(j.outcome == "ranked" and j.ranking == order[j.assignment_id] for j in judgments)
    assert all(j.seconds == 7.0 and j.rationale == "left reads better" for j in judgments)


def test_batches_keep_the_rules(store, make_campaign, monkeypatch):
    """10 pairs × overlap 3 + 1 gold task for 4 annotators = 34 judgments, in transactions of 4
    turns, so batches end in the middle of a round."""
    monkeypatch.setattr(simulate, "JUDGMENTS_PER_TRANSACTION", 4)
    make_campaign(store, n_prompts=10, overlap=3, gold=[("gold prompt", "good", "bad")])
    stored = simulate.fill_campaign(store, "c", [Stub(f"s{i}") for i in range(4)])
    assert stored == 34
    check_rules(store, 4)


def test_postgresql(pg_url, make_campaign):
    """On PostgreSQL each turn is its own transaction; the rules are the same."""
    store = Store.open(pg_url)
    make_campaign(store, n_prompts=6, overlap=2, gold=[("gold prompt", "good", "bad")])
    assert simulate.fill_campaign(store, "c", [Stub(f"s{i}") for i in range(3)]) == 6 * 2 + 3
    check_rules(store, 3)
    store.dispose()


def test_open_assignment_is_judged_first(store, make_campaign):
    """A task shown to sim s0 earlier (through the web app, say) is the first one s0 judges."""
    make_campaign(store, n_prompts=5, overlap=1)
    s0 = simulate.simulated_annotator_id(store, "s0", "c")
    shown = service.next_task(store, s0, "c")
    assert simulate.fill_campaign(store, "c", [Stub("s0")], max_judgments=1) == 1
    _, judgments, _ = rows(store)
    assert [j.assignment_id for j in judgments] == [shown["assignment"]]


def test_max_judgments_and_turn_order(store, make_campaign, monkeypatch):
    """Turns go s0, s1, s2, s0, ... across transactions of 4: 10 judgments are 4, 3, 3."""
    monkeypatch.setattr(simulate, "JUDGMENTS_PER_TRANSACTION", 4)
    make_campaign(store, n_prompts=20, overlap=3)
    assert simulate.fill_campaign(store, "c", [Stub(f"s{i}") for i in range(3)], max_judgments=10) == 10
    with store.read() as s:
        counts = dict(s.execute(select(Annotator.name, func.count(Judgment.id)).join(Judgment)
                                .group_by(Annotator.name)).all())
    assert counts == {"s0": 4, "s1": 3, "s2": 3}


def test_answers_are_checked_like_submissions(store, make_campaign):
    """A tie without a rationale breaks the campaign's rule (close calls need one), as it would through
    `submit`; the error names it, and the transaction it happened in stores nothing."""
    make_campaign(store, n_prompts=3, overlap=1)
    with pytest.raises(ServiceError, match="rationale on a close call") as err:
        simulate.fill_campaign(store, "c", [Stub("s0", outcome="tie", rationale="")])
    assert err.value.status == 422
    _, judgments, assignments = rows(store)
    assert judgments == [] and assignments == []


@pytest.mark.parametrize("n_prompts", [20, 80])
def test_sql_statements_per_judgment_do_not_grow(store, make_campaign, n_prompts):
    """At most 10 statements per judgment (9 per turn plus the batch's few), for any campaign size."""
    make_campaign(store, n_prompts=n_prompts, overlap=3)
    statements = []
    event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    stored = simulate.fill_campaign(store, "c", [Stub(f"s{i}") for i in range(3)])
    assert stored == 3 * n_prompts
    assert len(statements) / stored <= 10


def test_a_seed_makes_the_judgments_repeatable(tmp_path, make_campaign):
    """The built-in task's panel with 30% random answers fills two fresh stores: with the same seed
    (annotators' and claim order's) the judgments are identical, row for row; with another claim-order
    seed, which annotator judges which task changes."""
    from rlhfkit.tasks import assistant

    def fill(name: str, seed: int) -> list[tuple]:
        store = Store.open(str(tmp_path / f"{name}.db"))
        try:
            make_campaign(store, n_prompts=12, overlap=2)
            simulate.fill_campaign(store, "c", assistant.panel(3, noise=0.3, seed=0), seed=seed)
            _, judgments, assignments = rows(store)
            order = {a.id: a.order for a in assignments}
            return sorted((j.task_id, j.annotator_id, j.outcome, tuple(order[j.assignment_id])) for j in judgments)
        finally:
            store.dispose()

    first, again, other = fill("a", 7), fill("b", 7), fill("c", 8)
    assert first == again and len(first) == 12 * 2
    assert [(t, a) for t, a, *_ in first] != [(t, a) for t, a, *_ in other]
