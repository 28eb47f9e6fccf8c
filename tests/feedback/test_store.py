"""The store: SQLite settings, Alembic migrations, PostgreSQL, and importing without torch.

    pytest tests/feedback/test_store.py
"""

import sqlite3
import subprocess
import sys

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text

from rlhfkit.errors import ConfigError
from rlhfkit.feedback.store import MIGRATIONS, Base, Store, hash_token, store_url


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def old_store(db: str, revision: str) -> Store:
    """A store whose schema stops at `revision`, as an older rlhfkit left it."""
    store = Store.open(db, upgrade=False)
    config = alembic_config()
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return store


def insert_old_campaign(store: Store) -> None:
    """Campaign "c" (2 pairs, overlap 1) written with the columns of revision 0001, as old code did."""
    with store.write() as session:
        session.execute(text("INSERT INTO campaigns (name, guidelines, rubric, k, overlap, require_rationale, "
                             "created_at) VALUES ('c', '', '[]', 2, 1, 'never', '2026-01-01')"))
        campaign_id = session.scalar(text("SELECT id FROM campaigns"))
        for p in range(2):
            session.execute(text(f"INSERT INTO prompts (campaign_id, text, meta) VALUES ({campaign_id}, "
                                 f"'prompt {p}?', '{{}}')"))
            prompt_id = session.scalar(text("SELECT max(id) FROM prompts"))
            for r in range(2):
                session.execute(text(f"INSERT INTO responses (prompt_id, text, model) VALUES ({prompt_id}, "
                                     f"'response {r}', 'm')"))
            session.execute(text(f"INSERT INTO tasks (campaign_id, prompt_id, overlap, n_assigned) "
                                 f"VALUES ({campaign_id}, {prompt_id}, 1, 0)"))
            task_id = session.scalar(text("SELECT max(id) FROM tasks"))
            for slot, response_id in enumerate(session.scalars(
                    text(f"SELECT id FROM responses WHERE prompt_id = {prompt_id} ORDER BY id"))):
                session.execute(text(f"INSERT INTO task_items (task_id, slot, response_id) "
                                     f"VALUES ({task_id}, {slot}, {response_id})"))


def test_feedback_imports_without_torch():
    """The web app's machine need not have torch: no module of rlhfkit.feedback may import it."""
    code = ("import sys; import rlhfkit.feedback.commands, rlhfkit.feedback.app, rlhfkit.feedback.export, "
            "rlhfkit.feedback.simulate; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_sqlite_wal_and_foreign_keys(store):
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_migrations_match_models_and_survive_reopen(tmp_path, make_campaign):
    """The revisions create exactly the tables and indexes of store.py; reopening keeps the data."""
    path = tmp_path / "f.db"
    store = Store.open(str(path))
    make_campaign(store)
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    store.dispose()
    again = Store.open(str(path))  # upgrade() on an up-to-date store is a no-op
    from rlhfkit.feedback.service import list_campaigns

    assert list_campaigns(again) == ["c"]
    assert sqlite3.connect(path).execute("select version_num from alembic_version").fetchall() == [(HEAD,)]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_0001_store_is_upgraded_in_place(backend, tmp_path, request, make_campaign):
    """A store left at revision 0001 (before the index of 0002) gets the index when opened, keeps
    its campaign, and hands out its tasks as before."""
    db = str(tmp_path / "old.db") if backend == "sqlite" else request.getfixturevalue("pg_url")
    old = old_store(db, "0001")
    insert_old_campaign(old)
    assert "ix_tasks_least_covered" not in {ix["name"] for ix in inspect(old.engine).get_indexes("tasks")}
    old.dispose()

    store = Store.open(db)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("select version_num from alembic_version").fetchall() == [(HEAD,)]
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    from rlhfkit.feedback import service

    who = service.annotator_for_token(store, service.add_annotator(store, "alice", campaigns=["c"]))
    prompts = set()
    while (task := service.next_task(store, who.id, "c")) is not None:
        prompts.add(task["prompt"])
        service.submit(store, who.id, {"assignment": task["assignment"], "key": f"key-{task['assignment']:05d}",
                                       "outcome": "a", "rationale": "because"})
    assert prompts == {"prompt 0?", "prompt 1?"}
    store.dispose()


def test_postgresql_store(pg_url, make_campaign):
    store = Store.open(pg_url)
    assert store.engine.dialect.name == "postgresql"
    make_campaign(store)
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    store.dispose()


def test_bad_store_urls(tmp_path):
    assert store_url("x.db").startswith("sqlite:////")
    assert store_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    with pytest.raises(ConfigError, match="does not exist"):
        Store.open(str(tmp_path / "missing" / "f.db"))
    with pytest.raises(ConfigError, match="only SQLite and PostgreSQL"):
        Store.open("mysql://u@127.0.0.1/x")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_open_assignments_of_a_0002_store_get_leases(backend, tmp_path, request):
    """Revision 0003 gives each assignment shown but not judged a 30-minute lease from when it was
    shown (so it expires like new ones); a judged one gets none; campaigns get the 30-minute default."""
    from datetime import datetime, timedelta

    from rlhfkit.feedback import service
    from rlhfkit.feedback.store import Assignment, Campaign

    db = str(tmp_path / "old.db") if backend == "sqlite" else request.getfixturevalue("pg_url")
    old = old_store(db, "0002")
    insert_old_campaign(old)
    shown = datetime(2026, 11, 30, 12, 0, 0)
    with old.write() as session:
        session.execute(text("INSERT INTO annotators (name, token_hash, simulated, created_at) "
                             "VALUES ('alice', 'h', false, '2026-01-01')"))
        for task_id in session.scalars(text("SELECT id FROM tasks ORDER BY id")).all():
            session.execute(text("INSERT INTO assignments (task_id, annotator_id, \"order\", created_at) "
                                 "VALUES (:t, 1, '[1, 2]', :c)"), {"t": task_id, "c": shown})
            session.execute(text("UPDATE tasks SET n_assigned = 1 WHERE id = :t"), {"t": task_id})
        session.execute(text("INSERT INTO judgments (assignment_id, task_id, annotator_id, idempotency_key, "
                             "outcome, ranking, criteria, rationale, seconds, created_at) "
                             "VALUES (1, 1, 1, 'key-00001', 'tie', null, '{}', '', 1.0, :c)"), {"c": shown})
    old.dispose()
    store = Store.open(db)
    with store.read() as session:
        leases = {a.id: a.lease_expires_at for a in session.scalars(select(Assignment))}
        assert session.scalar(select(Campaign.lease_seconds)) == 1800
    assert leases == {1: None, 2: shown + timedelta(minutes=30)}
    bob = service.annotator_for_token(store, service.add_annotator(store, "bob", campaigns=["c"]))
    store.clock = lambda: shown + timedelta(minutes=29)
    assert service.next_task(store, bob.id, "c") is None  # alice still holds the other task
    store.clock = lambda: shown + timedelta(minutes=31)
    assert service.next_task(store, bob.id, "c")["prompt"] == "prompt 1?"
    store.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_annotators_of_a_0004_store_stay_store_wide(backend, tmp_path, request):
    """Before revision 0005 every annotator could judge every campaign; upgraded, they still can,
    while new annotators are scoped to the campaigns they are added to."""
    from rlhfkit.feedback import service

    db = str(tmp_path / "old.db") if backend == "sqlite" else request.getfixturevalue("pg_url")
    old = old_store(db, "0004")
    insert_old_campaign(old)
    token = "old-token-0123456789"
    with old.write() as session:
        session.execute(text("INSERT INTO annotators (name, token_hash, simulated, created_at) "
                             "VALUES ('alice', :h, false, '2026-01-01')"), {"h": hash_token(token)})
    old.dispose()
    store = Store.open(db)
    alice = service.annotator_for_token(store, token)
    assert service.list_campaigns(store, alice.id) == ["c"]
    assert service.next_task(store, alice.id, "c") is not None
    newcomer = service.annotator_for_token(store, service.add_annotator(store, "bob"))
    assert service.list_campaigns(store, newcomer.id) == []
    store.dispose()
