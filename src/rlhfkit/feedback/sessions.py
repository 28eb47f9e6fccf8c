"""Who is calling: long-lived access tokens (scripts, login links) and server-side browser sessions.

    who = identify_token(store, token)          # Identity(admin=...) or None; read each time, never cached
    sid = open_session(store, who)              # after POST /api/login: the cookie holds `sid`, not the token
    who = find_session(store, sid)              # None once it expired, was logged out or revoked
    close_session(store, sid)                   # logout
A new token for an annotator (`service.add_annotator` on a simulated one) or a new admin token
(`Store.set_admin_token`) deletes their sessions in the same transaction.

The store keeps only sha256 of a session id, as of a token, so a copy of the database logs nobody in.
Nothing is cached in the server process: a replaced token or a revoked session stops working on the
next request. Left out: a list of one's open sessions, idle timeouts shorter than SESSION_SECONDS.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, delete, select

from rlhfkit.feedback.service import Who
from rlhfkit.feedback.store import Annotator, Setting, Store, WebSession, hash_token

SESSION_SECONDS = 30 * 24 * 3600
# run on every request: built once, executed on a plain connection
_BY_TOKEN = select(Annotator.id, Annotator.name).where(Annotator.token_hash == bindparam("digest"))
_ADMIN_DIGEST = select(Setting.value).where(Setting.key == "admin_token_sha256")
_SESSION = (select(WebSession.annotator_id, WebSession.expires_at, Annotator.name)
            .outerjoin(Annotator, Annotator.id == WebSession.annotator_id)
            .where(WebSession.id_sha256 == bindparam("digest")))


@dataclass(frozen=True)
class Identity:
    """What a token or a session stands for: the admin, or one annotator."""

    admin: bool
    annotator: Who | None = None

    @property
    def name(self) -> str:
        return "the admin" if self.admin or self.annotator is None else self.annotator.name


def identify_token(store: Store, token: str) -> Identity | None:
    """The annotator or the admin whose token this is (one read transaction, as on every request)."""
    if not token or len(token) > 200:
        return None
    digest = hash_token(token)
    with store.engine.connect() as connection:  # no ORM session: this runs on every request
        row = connection.execute(_BY_TOKEN, {"digest": digest}).first()
        if row is not None:
            return Identity(admin=False, annotator=Who(row.id, row.name))
        admin = connection.execute(_ADMIN_DIGEST).scalar()
    return Identity(admin=True) if admin is not None and secrets.compare_digest(admin, digest) else None


def open_session(store: Store, identity: Identity) -> str:
    """A new session for `identity`; returns its id (the cookie's value), which only its holder knows."""
    sid = secrets.token_urlsafe(32)
    now = store.clock()
    with store.write() as session:
        session.execute(delete(WebSession).where(WebSession.expires_at < now))  # tidy: ended sessions
        session.add(WebSession(id_sha256=hash_token(sid), created_at=now,
                               annotator_id=None if identity.admin else identity.annotator.id,
                               expires_at=now + timedelta(seconds=SESSION_SECONDS)))
    return sid


def find_session(store: Store, sid: str) -> Identity | None:
    if not sid or len(sid) > 200:
        return None
    with store.engine.connect() as connection:
        row = connection.execute(_SESSION, {"digest": hash_token(sid)}).first()
    if row is None or row.expires_at <= store.clock():
        return None
    if row.annotator_id is None:
        return Identity(admin=True)
    return Identity(admin=False, annotator=Who(row.annotator_id, row.name))


def close_session(store: Store, sid: str) -> None:
    with store.write() as session:
        session.execute(delete(WebSession).where(WebSession.id_sha256 == hash_token(sid)))
