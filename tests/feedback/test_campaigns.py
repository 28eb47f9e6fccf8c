"""Campaign creation: reading responses files (both forms), errors with file:line, task layout.

    pytest tests/feedback/test_campaigns.py
"""

import json
import math

import pytest

from rlhfkit.errors import DataError
from rlhfkit.feedback.campaigns import read_gold, read_responses, task_slices


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_read_sample_output_and_responses_lists(tmp_path):
    path = write(tmp_path / "s.jsonl", [
        {"prompt": "p1", "completion": "x", "model": "runs/sft", "index": 0},
        {"prompt": "p2", "completion": "only one", "model": "runs/sft", "index": 0},
        {"prompt": "p1", "completion": "y", "model": "runs/sft", "index": 1},
        {"prompt": "p1", "completion": "x", "model": "runs/sft", "index": 2},  # duplicate text: dropped
        {"prompt": "p1", "completion": "  ", "model": "runs/sft", "index": 3},  # blank sample: left out
        {"prompt": "p3", "responses": ["a", "b", "c"], "models": ["m1", "m2", "m3"]},
    ])
    blank = []
    groups = read_responses(path, skipped=blank)
    assert blank == [f"{path}:5"]
    assert [g.prompt for g in groups] == ["p1", "p3"]  # p2 has a single response: nothing to compare
    assert groups[0].responses == [("x", "runs/sft", 0), ("y", "runs/sft", 1)]
    assert [m for _, m, _ in groups[1].responses] == ["m1", "m2", "m3"]


@pytest.mark.parametrize("line, message", [
    ('{"prompt": "p"}', "expected a 'completion'"),
    ('{"prompt": "", "completion": "x"}', "'prompt' must be a non-empty string"),
    ('{"prompt": "p", "completion": 3}', "'completion' must be a non-empty string"),
    ('{"prompt": "p", "responses": ["a", " "]}', "'responses\\[1\\]' must be a non-empty string"),
    ('{"prompt": "p", "responses": "ab"}', "'responses' must be a non-empty list"),
    ('{"prompt": "p", "completion": "x", "index": "0"}', "'index' must be an integer"),
    ("[1, 2]", "expected a JSON object"),
    ('{"prompt": "p", "completion": ', "not valid JSON"),
])
def test_responses_errors_name_file_and_line(tmp_path, line, message):
    path = write(tmp_path / "bad.jsonl", [{"prompt": "ok", "completion": "fine"}, line])
    with pytest.raises(DataError, match=message) as err:
        read_responses(path)
    assert err.value.path == str(path) and err.value.line == 2


def test_nothing_to_compare(tmp_path):
    path = write(tmp_path / "one.jsonl", [{"prompt": "p", "completion": "x"}])
    with pytest.raises(DataError, match="--num-samples 2"):
        read_responses(path)


def test_gold_file(tmp_path):
    path = write(tmp_path / "g.jsonl", [{"prompt": "p", "chosen": "good", "rejected": "bad"},
                                        {"prompt": "p", "chosen": "same", "rejected": "same"}])
    with pytest.raises(DataError, match="identical") as err:
        read_gold(path)
    assert err.value.line == 2


def test_task_slices():
    assert task_slices(3, 2) == [[0, 1], [0, 2], [1, 2]]
    assert task_slices(4, 4) == [[0, 1, 2, 3]]
    assert task_slices(5, 2)[-1] == [3, 4] and len(task_slices(5, 2)) == 10
    assert task_slices(7, 3) == [[0, 1, 2], [3, 4, 5, 6]]  # a lone last response joins the chunk before
    assert task_slices(8, 3) == [[0, 1, 2], [3, 4, 5], [6, 7]]


def test_create_campaign_counts(store, make_campaign):
    counts = make_campaign(store, n_prompts=3, k=3, gold=[("gp", "good", "bad")])
    assert counts == {"prompts": 4, "responses": 9, "tasks": 3, "gold": 1}
    from rlhfkit.errors import ConfigError

    with pytest.raises(ConfigError, match="already exists"):
        make_campaign(store)


# ---------------------------------------------------------------------------------------------
# writing a large campaign in batches, beside a live server; several creators at once


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> str:
    return str(tmp_path / "f.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_a_campaign_is_written_in_committed_batches_and_hidden_until_done(db):
    """25 prompts x 3 responses = 75 pairs in batches of 10 (a prompt's 3 pairs stay together: 12, 12,
    ..., 3) plus 2 gold tasks. Between batches no transaction is open (another connection takes the
    SQLite write lock at once), the tasks so far are committed, and the campaign is neither listed nor
    served until the last batch is in."""
    import sqlite3

    from feedback_helpers import synthetic_groups
    from sqlalchemy import func, select

    from rlhfkit.feedback import service
    from rlhfkit.feedback.campaigns import CampaignSpec, create_campaign
    from rlhfkit.feedback.store import Store, Task

    store, other = Store.open(db), Store.open(db)
    token = service.add_annotator(store, "alice", all_campaigns=True)
    alice = service.annotator_for_token(store, token)
    seen = []

    def between(done: int, total: int) -> None:
        with other.read() as session:
            committed = session.scalar(select(func.count(Task.id)))
        seen.append((done, total, committed))
        if store.is_sqlite:
            lock = sqlite3.connect(db, timeout=0, isolation_level=None)
            lock.execute("BEGIN IMMEDIATE")  # raises "database is locked" if a batch were still open
            lock.execute("ROLLBACK")
            lock.close()
        assert service.list_campaigns(other) == []
        with pytest.raises(service.ServiceError, match="still being written"):
            service.next_task(other, alice.id, "big")

    groups = synthetic_groups(25, k=3)
    counts = create_campaign(store, CampaignSpec(name="big", overlap=1), groups,
                             gold=[("gold 1?", "good", "bad"), ("gold 2?", "fine", "awful")], batch_tasks=10,
                             progress=between)
    assert counts == {"prompts": 27, "responses": 75, "tasks": 75, "gold": 2}  # responses: not the gold ones
    assert [done for done, _, _ in seen] == [12, 24, 36, 48, 60, 72, 75] and {t for _, t, _ in seen} == {77}
    assert all(done == committed for done, _, committed in seen)
    assert service.list_campaigns(other) == ["big"]
    task = service.next_task(other, alice.id, "big")
    assert task["prompt"] in {g.prompt for g in groups} | {"gold 1?", "gold 2?"}
    store.dispose()
    other.dispose()


def test_a_failed_write_leaves_nothing_and_frees_the_name(db):
    from feedback_helpers import synthetic_groups
    from sqlalchemy import func, select

    from rlhfkit.feedback.campaigns import CampaignSpec, create_campaign
    from rlhfkit.feedback.store import Campaign, Prompt, Response, Store, Task, TaskItem

    store = Store.open(db)

    def fail(done: int, total: int) -> None:
        if done >= 20:
            raise KeyboardInterrupt  # Ctrl+C in the middle of a campaign

    with pytest.raises(KeyboardInterrupt):
        create_campaign(store, CampaignSpec(name="big"), synthetic_groups(40), batch_tasks=10, progress=fail)
    with store.read() as session:
        assert [session.scalar(select(func.count()).select_from(t)) for t in (Campaign, Prompt, Response, Task, TaskItem)] \
            == [0, 0, 0, 0, 0]
    assert create_campaign(store, CampaignSpec(name="big"), synthetic_groups(40), batch_tasks=10)["tasks"] == 40
    store.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("names", [["a", "b", "c", "d"], ["same"] * 4], ids=["distinct names", "one name"])
def test_concurrent_campaign_commands_on_a_new_store(db, tmp_path, names):
    """Four `rlhfkit campaign` processes start at once on a store that does not exist yet: with distinct
    names all succeed; with one name one succeeds and the others say, in one line, that it exists."""
    import subprocess
    import sys

    from rlhfkit.feedback import service
    from rlhfkit.feedback.store import Store

    data = write(tmp_path / "s.jsonl", [{"prompt": f"p{p}", "responses": ["x", "y", "z"]} for p in range(30)])
    procs = [subprocess.Popen([sys.executable, "-m", "rlhfkit", "campaign", "--db", db, "--data", str(data),
                               "--campaign", name, "--annotators", f"person-{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i, name in enumerate(names)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(rc for rc, _, _ in results)
    errors = [err for rc, _, err in results if rc]
    if len(set(names)) == len(names):
        assert codes == [0, 0, 0, 0], errors
    else:
        assert codes == [0, 2, 2, 2], [r for r in results]
        assert all(len(e.strip().splitlines()) == 1 and "'same' already exists" in e for e in errors), errors
    store = Store.open(db)
    assert sorted(service.list_campaigns(store)) == sorted(set(names))
    admin_links = [out for _, out, _ in results if "admin token" in out]
    assert len(admin_links) == 1  # one admin token, printed once, and it is the one that works
    token = admin_links[0].split("admin token (shown once; keep it): ")[1].split()[0]
    assert store.is_admin_token(token)
    store.dispose()


def test_a_campaign_left_unfinished_by_a_killed_writer(db, tmp_path, capsys):
    """A writer killed with -9 leaves its campaign hidden and its name taken: the next `rlhfkit campaign`
    says so in one line, and with --replace-unfinished deletes it and writes the campaign again."""
    from rlhfkit.cli import main
    from rlhfkit.feedback import service
    from rlhfkit.feedback.store import Campaign, Store

    store = Store.open(db)
    with store.write() as session:  # what the killed writer's first transaction left
        session.add(Campaign(name="big", guidelines="", rubric=[], k=2, overlap=1, require_rationale="never",
                             ready=False))
    data = write(tmp_path / "s.jsonl", [{"prompt": "p", "responses": ["x", "y"]}])
    assert main(["campaign", "--db", db, "--data", str(data), "--campaign", "big"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "already exists, unfinished" in err and "--replace-unfinished" in err
    assert main(["campaign", "--db", db, "--data", str(data), "--campaign", "big", "--replace-unfinished"]) == 0
    assert service.list_campaigns(store) == ["big"]
    assert main(["campaign", "--db", db, "--data", str(data), "--campaign", "big", "--replace-unfinished"]) == 2
    assert "'big' already exists in this store" in capsys.readouterr().err  # a finished one is never replaced
    store.dispose()


def test_selected_tasks_are_the_pools_most_informative_and_the_store_records_why(store):
    """Two prompts with 3 responses each: pools of 3 pairs each. Two heads score the responses:
    prompt A: heads [0, 0, ln 3] and [0, ln 3, 0] -> pair (0,1): gaps 0 and -ln 3 (heads disagree),
    (0,2): -ln 3 and 0 (disagree), (1,2): -ln 3 and +ln 3 (disagree most); prompt B: both heads
    [0, 1, 2] (agree: BALD 0 for every pair). BALD ranks A(1,2) = ln 2 - H(3/4, 1/4) = 0.1308 first;
    the pairs (0,1) and (0,2) of A have p_h = (1/2, 1/2) and (3/4, 1/4) -> mean (5/8, 3/8), BALD
    H(5/8) - (ln 2 + H(3/4)) / 2 = 0.66156 - 0.62774 = 0.03382. Budget 2 -> A(1,2) and A(0,1) (the tie goes to
    the earlier candidate); with at most 1 per prompt -> A(1,2) and B's first pair (score 0)."""
    from sqlalchemy import select as query

    from rlhfkit.feedback.campaigns import CampaignSpec, ResponseGroup, create_campaign, select_tasks
    from rlhfkit.feedback.store import Response, Task, TaskItem

    ln3 = math.log(3)
    groups = [ResponseGroup("A", [("a0", "m", 0), ("a1", "m", 1), ("a2", "m", 2)]),
              ResponseGroup("B", [("b0", "m", 0), ("b1", "m", 1), ("b2", "m", 2)])]
    rewards = [[[0.0, 0.0], [0.0, ln3], [ln3, 0.0]], [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]]  # [g][j][head]
    picked = select_tasks(groups, 2, "bald", 2, rewards)
    assert [g.prompt for g in picked] == ["A"]
    assert [indices for indices, _ in picked[0].tasks] == [[0, 1], [1, 2]]  # written in pool order
    scores = {tuple(i): s["score"] for i, s in picked[0].tasks}
    assert scores[(1, 2)] == pytest.approx(math.log(2) - (math.log(4) - 0.75 * ln3))
    assert scores[(0, 1)] == pytest.approx(0.661563 - 0.627741, abs=1e-5)
    capped = select_tasks(groups, 2, "bald", 2, rewards, max_per_prompt=1)
    assert [(g.prompt, [i for i, _ in g.tasks]) for g in capped] == [("A", [[1, 2]]), ("B", [[0, 1]])]
    counts = create_campaign(store, CampaignSpec(name="active"), capped)
    assert counts["tasks"] == 2
    with store.read() as session:
        rows = session.execute(query(Task.selection, Response.text).join(TaskItem, TaskItem.task_id == Task.id)
                               .join(Response, Response.id == TaskItem.response_id).order_by(Task.id, TaskItem.slot)).all()
    assert [text for _, text in rows] == ["a1", "a2", "b0", "b1"]
    assert rows[0][0] == {"strategy": "bald", "score": pytest.approx(0.130812, abs=1e-6)}
    assert rows[2][0] == {"strategy": "bald", "score": 0.0}


def test_label_noise_scores_the_noisy_answer():
    """Prompt A's pair (1, 2) again: heads predict 1/4 and 3/4 for the first response. With --label-noise 0.1
    each head's answer distribution is 0.05 + 0.9 p: 0.275 and 0.725, their mean 1/2, so
    BALD = ln 2 - H(0.275) = 0.69315 - 0.58817 = 0.10498, below the noise-free 0.130812. The config
    refuses a noise outside [0, 1)."""
    from rlhfkit.errors import ConfigError
    from rlhfkit.feedback.campaigns import ResponseGroup, select_tasks
    from rlhfkit.feedback.commands import CampaignConfig

    ln3 = math.log(3)
    groups = [ResponseGroup("A", [("a0", "m", 0), ("a1", "m", 1), ("a2", "m", 2)])]
    rewards = [[[0.0, 0.0], [0.0, ln3], [ln3, 0.0]]]
    picked = select_tasks(groups, 2, "bald", 1, rewards, noise=0.1)
    assert picked[0].tasks == [([1, 2], {"strategy": "bald", "score": pytest.approx(0.104978, abs=1e-6)})]
    with pytest.raises(ConfigError, match="--label-noise"):
        CampaignConfig(data="x.jsonl", select="bald", budget=1, reward_model="rm", label_noise=1.0).validate()


def test_random_selection_needs_no_reward_model_and_others_do():
    from rlhfkit.errors import ConfigError
    from rlhfkit.feedback.campaigns import ResponseGroup, select_tasks

    groups = [ResponseGroup(f"p{i}", [(f"r{i}{j}", "m", j) for j in range(4)]) for i in range(5)]  # 5 x 6 pairs
    first, again = (select_tasks(groups, 2, "random", 7, seed=1) for _ in range(2))
    assert sum(len(g.tasks) for g in first) == 7 and [g.tasks for g in first] == [g.tasks for g in again]
    assert all(s["strategy"] == "random" and 0 <= s["score"] < 1 for g in first for _, s in g.tasks)
    with pytest.raises(ConfigError, match="--reward-model"):
        select_tasks(groups, 2, "disagreement", 3)
