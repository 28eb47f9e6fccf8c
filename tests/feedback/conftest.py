"""Fixtures for the feedback tests: real SQLite files, a real PostgreSQL, a real uvicorn server.

    store            a fresh SQLite store in tmp_path
    make_campaign    writes a campaign of synthetic pairs (no built-in task needed)
    postgres         a PostgreSQL server started from Debian's package with initdb + pg_ctl in a temp
                     folder on a loopback port (as the `postgres` user when run as root); skipped when
                     the binaries are missing, except in CI (CI=true), where it fails
    serve            `feedback_helpers.running_server`: `python -m rlhfkit serve` on a free loopback port

Nothing here mocks the database or the server.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from feedback_helpers import ADMIN, free_port, running_server, synthetic_groups

from rlhfkit.feedback.campaigns import CampaignSpec, create_campaign
from rlhfkit.feedback.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(str(tmp_path / "feedback.db"))
    s.set_admin_token(ADMIN)
    yield s
    s.dispose()


@pytest.fixture
def make_campaign():
    def make(store: Store, name: str = "c", n_prompts: int = 4, k: int = 2, overlap: int = 3,
             require_rationale: str = "close", texts: dict[int, list[str]] | None = None, gold=None) -> dict:
        spec = CampaignSpec(name=name, k=k, overlap=overlap, require_rationale=require_rationale)
        return create_campaign(store, spec, synthetic_groups(n_prompts, k, texts), gold)

    return make


# ---------------------------------------------------------------------------------------------
# PostgreSQL from Debian's package


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """URL of the maintenance database of a throwaway PostgreSQL server on 127.0.0.1."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        message = "PostgreSQL is not installed (scripts/install.sh installs Debian's postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = os.geteuid() == 0
    data = Path(tempfile.mkdtemp(prefix="rlhfkit-pg-"))
    if root:
        shutil.chown(data, "postgres", "postgres")
    as_user = ["runuser", "-u", "postgres", "--"] if root else []
    port = free_port()
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True)  # noqa: E731
    run(str(bin_dir / "initdb"), "-D", str(data / "db"), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    run(str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-o", options, "-l", str(data / "log"), "-w", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def pg_url(postgres: str, request: pytest.FixtureRequest) -> str:
    """A new, empty database on the test server, named after the test."""
    import psycopg

    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    with psycopg.connect(postgres + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{postgres}/{name}"


# ---------------------------------------------------------------------------------------------
# a real server


@pytest.fixture
def serve():
    return running_server
