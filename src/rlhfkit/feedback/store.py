"""The feedback store: tables for campaigns, tasks, annotators and judgments, on SQLite or PostgreSQL.

    store = Store.open("feedback.db")                      # SQLite file (WAL, foreign keys on)
    store = Store.open("postgresql://user@127.0.0.1/rlhf")  # PostgreSQL through psycopg 3
    with store.write() as session: ...                     # one short write transaction
    with store.read() as session: ...                      # a read-only snapshot

`Store.open` runs the Alembic migrations in `migrations/` (`Store.upgrade()`), so a store written by
an older rlhfkit is brought up to date in place and never recreated.

Tables (response ids are canonical; the order an annotator saw is kept per assignment):
    campaigns    name, guidelines, rubric, k (responses per task), overlap, rationale policy
    prompts      one per distinct prompt of a campaign
    responses    text + the checkpoint ("model") that produced it
    tasks        a comparison of 2..K responses (task_items: slot -> response), optional gold answer;
                 indexed by (campaign, n_assigned) so the least-covered come first without a scan
    annotators   name + sha256 of the access token (the token itself is shown once, never stored);
                 scoped to campaigns (campaign_annotators) unless `all_campaigns`
    sessions     sha256 of a browser session id -> annotator (or the admin), with an expiry
    assignments  task shown to annotator, in a shuffled order; unique (task, annotator); a lease
                 (expiry time) while unjudged, after which the slot goes back to the queue
    judgments    one per assignment: outcome, ranking, per-criterion picks, rationale, seconds, skip;
                 unique (annotator, idempotency key) so a retried submission is stored once
    settings     key/value (the admin token's hash)

SQLite writes are serialized in-process by a lock and use `BEGIN IMMEDIATE`, so concurrent writers
wait for each other instead of failing with "database is locked" on a read-to-write upgrade.
Left out: sharding, soft deletes, an audit log of edits (a judgment is never edited).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from rlhfkit.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x726C686B  # PostgreSQL advisory lock key held while migrating ("rlhk")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# Text PostgreSQL refuses (NUL) or that has no UTF-8 form (lone surrogates, which JSON's "\ud800"
# escapes can carry); the service and campaign readers refuse it before it reaches a table.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Ids are PostgreSQL INTEGERs (SQLite's are wider): anything outside 1..MAX_ID names no row.
MAX_ID = 2**31 - 1
DEFAULT_LEASE_SECONDS = 30 * 60
MAX_LEASE_SECONDS = 30 * 24 * 3600


def storable(text: str) -> bool:
    """Whether both backends can store `text` as it is."""
    return UNSTORABLE.search(text) is None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(24)


class Base(DeclarativeBase):
    pass


class Campaign(Base):
    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    guidelines: Mapped[str] = mapped_column(Text, default="")
    rubric: Mapped[list] = mapped_column(JSON, default=list)  # [{"key", "label", "help"}]
    k: Mapped[int] = mapped_column(Integer, default=2)
    overlap: Mapped[int] = mapped_column(Integer, default=3)
    require_rationale: Mapped[str] = mapped_column(String(10), default="close")  # never | close | always
    # how long an annotator holds a task before it goes back to the queue (revision 0003)
    lease_seconds: Mapped[int] = mapped_column(Integer, default=DEFAULT_LEASE_SECONDS,
                                               server_default=str(DEFAULT_LEASE_SECONDS))
    # false while `rlhfkit campaign` is still writing its tasks: not listed, not served (revision 0004)
    ready: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    tasks: Mapped[list[Task]] = relationship(back_populates="campaign")


class Prompt(Base):
    __tablename__ = "prompts"
    __table_args__ = (UniqueConstraint("campaign_id", "text"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict] = mapped_column(JSON, default=dict)


class Response(Base):
    __tablename__ = "responses"
    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(500), default="")
    sample_index: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Task(Base):
    __tablename__ = "tasks"
    # a campaign's tasks least-covered first, the order `service.claim_task` reads them in (revision 0002)
    __table_args__ = (Index("ix_tasks_least_covered", "campaign_id", "n_assigned", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    overlap: Mapped[int] = mapped_column(Integer)
    # slots handed out; an atomic `UPDATE ... SET n_assigned = n_assigned + 1 WHERE n_assigned < overlap`
    # keeps concurrent annotators from over-filling a task on PostgreSQL as on SQLite
    n_assigned: Mapped[int] = mapped_column(Integer, default=0)
    gold: Mapped[list | None] = mapped_column(JSON, nullable=True)  # known ranking of response ids, best first
    # which query-selection strategy chose this task, and its score: {"strategy", "score"} (revision 0006)
    selection: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    campaign: Mapped[Campaign] = relationship(back_populates="tasks")
    prompt: Mapped[Prompt] = relationship()
    items: Mapped[list[TaskItem]] = relationship(order_by="TaskItem.slot", cascade="all, delete-orphan")

    @property
    def response_ids(self) -> list[int]:
        return [item.response_id for item in self.items]


class TaskItem(Base):
    __tablename__ = "task_items"
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id", ondelete="CASCADE"))
    response: Mapped[Response] = relationship()


class Annotator(Base):
    __tablename__ = "annotators"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # store-wide: may judge every campaign; otherwise only those in campaign_annotators (revision 0005)
    all_campaigns: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class CampaignAnnotator(Base):
    """Which annotators may see and judge a campaign (unless they are store-wide)."""

    __tablename__ = "campaign_annotators"
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"), primary_key=True,
                                              index=True)


class WebSession(Base):
    """A browser's login: the cookie holds a random session id, this table only its hash. Logout,
    a new token for the annotator, or a new admin token deletes the row, which ends the session."""

    __tablename__ = "sessions"
    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    annotator_id: Mapped[int | None] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"),
                                                     nullable=True, index=True)  # None: the admin
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("task_id", "annotator_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"), index=True)
    order: Mapped[list] = mapped_column(JSON)  # response ids in the order shown (left to right)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # the lease (revision 0003): while held and unjudged, when the slot goes back to the queue;
    # NULL once judged or released. Indexed, so finding the expired ones reads only those.
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, index=True)
    released_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # lapsed: slot given back
    lapses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # leases that expired
    task: Mapped[Task] = relationship()


class Judgment(Base):
    __tablename__ = "judgments"
    __table_args__ = (UniqueConstraint("annotator_id", "idempotency_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), unique=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id", ondelete="CASCADE"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(10))  # best | tie | both_bad | ranking | skip
    ranking: Mapped[list | None] = mapped_column(JSON, nullable=True)  # response ids, best first
    criteria: Mapped[dict] = mapped_column(JSON, default=dict)  # criterion -> response id or "tie"
    rationale: Mapped[str] = mapped_column(Text, default="")
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    # an AI judge's soft label, response id (as a string) -> probability; None for a hard choice (revision 0006)
    probabilities: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    principle: Mapped[str] = mapped_column(Text, default="", server_default="")  # the principle an AI judge applied
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    annotator: Mapped[Annotator] = relationship()
    assignment: Mapped[Assignment] = relationship()


class Setting(Base):
    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def store_url(db: str) -> str:
    """`feedback.db` or `sqlite:///x.db` -> SQLite; `postgresql://...` -> PostgreSQL via psycopg 3."""
    if "://" not in db:
        return f"sqlite:///{Path(db).expanduser().resolve()}"
    if db.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + db.split("://", 1)[1]
    return db


class Store:
    """An engine plus the session helpers; one per process."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utcnow):
        self.engine = engine
        self.clock = clock  # naive UTC "now" for leases; tests inject their own
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._write_lock = threading.Lock() if self.is_sqlite else None

    @classmethod
    def open(cls, db: str, upgrade: bool = True, must_exist: bool = False) -> Store:
        """Connect to `db` and migrate it. `must_exist`: a SQLite file that is not there is an error
        (for commands that read a store), instead of a new empty store left behind."""
        url = store_url(db)
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ConfigError(f"--db {db!r} is neither a file path nor a database URL "
                              f"(e.g. feedback.db or postgresql://user@127.0.0.1:5432/rlhf)") from None
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and not Path(parsed.database).parent.exists():
                raise ConfigError(f"--db {db!r}: folder {Path(parsed.database).parent} does not exist")
            if must_exist and parsed.database and not Path(parsed.database).exists():
                raise ConfigError(f"--db {db!r}: no feedback store there; create one with `rlhfkit campaign`")
            if parsed.database and Path(parsed.database).is_dir():
                raise ConfigError(f"--db {db!r} is a folder; give the path of a SQLite file")
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            _sqlite_pragmas(engine)
        elif parsed.get_backend_name() == "postgresql":
            try:
                engine = create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)
            except ModuleNotFoundError:
                raise ConfigError("PostgreSQL needs the psycopg driver: pip install 'psycopg[binary]'") from None
        else:
            raise ConfigError(f"--db {db!r}: only SQLite and PostgreSQL stores are supported")
        store = cls(engine)
        if upgrade:
            store.upgrade()
        return store

    def media_folder(self) -> Path | None:
        """A SQLite store's folder of media files (`<file>.media`, e.g. the animations `rlhfkit control`
        writes for its segment pairs), which the web app serves at /media; None for other databases."""
        database = self.engine.url.database
        return Path(database + ".media") if self.is_sqlite and database and database != ":memory:" else None

    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision (creates it on an empty database)."""
        from alembic import command
        from alembic.config import Config
        from sqlalchemy.exc import DBAPIError

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            # several processes may open a new store at once (four `rlhfkit campaign` runs): each waits
            # for the lock, then finds the schema made (SQLite: BEGIN IMMEDIATE rather than a read
            # transaction that fails to become a write; PostgreSQL: a transaction-scoped advisory lock)
            with self.engine.connect() as connection:
                connection = connection.execution_options(immediate=True)
                with connection.begin():
                    if not self.is_sqlite:
                        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
        except DBAPIError as exc:  # unreachable server, wrong password, a file that is not SQLite
            url = self.engine.url
            where = url.database if self.is_sqlite else url.set(drivername=url.get_backend_name()).render_as_string()
            reason = " ".join(str(exc.orig).split())  # psycopg's messages span lines; errors are one line
            raise ConfigError(f"cannot open the feedback store {where}: {reason}") from None

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A session in one write transaction, committed on success, rolled back on error."""
        lock = self._write_lock or contextlib.nullcontext()
        with lock, self.engine.connect() as connection:
            connection = connection.execution_options(immediate=True)
            with Session(bind=connection, expire_on_commit=False) as session:
                with session.begin():
                    yield session

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    # -- the admin token: only its hash is stored ---------------------------------------------

    def set_admin_token(self, token: str | None = None) -> str:
        token = token or new_token()
        with self.write() as session:
            old = session.get(Setting, "admin_token_sha256")
            if old is not None and old.value != hash_token(token):  # a new token ends the old one's sessions
                session.execute(delete(WebSession).where(WebSession.annotator_id.is_(None)))
            session.merge(Setting(key="admin_token_sha256", value=hash_token(token)))
        return token

    def new_admin_token_if_none(self) -> str | None:
        """A new admin token if the store has none yet, else None. Atomic: of several processes
        opening a new store at once, exactly one makes (and prints) the token."""
        from sqlalchemy.exc import IntegrityError

        token = new_token()
        try:
            with self.write() as session:
                if session.get(Setting, "admin_token_sha256") is not None:
                    return None
                session.add(Setting(key="admin_token_sha256", value=hash_token(token)))
        except IntegrityError:  # PostgreSQL: another process inserted it first
            return None
        return token

    def has_admin_token(self) -> bool:
        with self.read() as session:
            return session.get(Setting, "admin_token_sha256") is not None

    def is_admin_token(self, token: str) -> bool:
        with self.read() as session:
            row = session.get(Setting, "admin_token_sha256")
            return row is not None and secrets.compare_digest(row.value, hash_token(token))

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("immediate")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
