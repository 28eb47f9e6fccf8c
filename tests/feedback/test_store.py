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
from sqlalchemy import inspect

from rlhfkit.errors import ConfigError
from rlhfkit.feedback.store import MIGRATIONS, Base, Store, store_url


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
    assert sqlite3.connect(path).execute("select version_num from alembic_version").fetchall() == [("0002",)]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_0001_store_is_upgraded_in_place(backend, tmp_path, request, make_campaign):
    """A store left at revision 0001 (before the index of 0002) gets the index when opened, keeps
    its campaign, and hands out its tasks as before."""
    db = str(tmp_path / "old.db") if backend == "sqlite" else request.getfixturevalue("pg_url")
    old = Store.open(db, upgrade=False)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with old.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    make_campaign(old, n_prompts=2, overlap=1)
    assert "ix_tasks_least_covered" not in {ix["name"] for ix in inspect(old.engine).get_indexes("tasks")}
    old.dispose()

    store = Store.open(db)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("select version_num from alembic_version").fetchall() == [("0002",)]
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    from rlhfkit.feedback import service

    who = service.annotator_for_token(store, service.add_annotator(store, "alice"))
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
