"""The one layer between people (web app), simulated annotators and the store.

    token = add_annotator(store, "annotator-1", campaigns=["demo"])   # shown once; only its hash is kept
    who = annotator_for_token(store, token)
    task = next_task(store, who.id, "demo")               # {"assignment", "prompt", "responses", ...}
    submit(store, who.id, {"assignment": task["assignment"], "key": "uuid-1", "outcome": "a",
                           "criteria": {"clarity": "tie"}, "rationale": "...", "seconds": 12.5})
    stats = campaign_stats(store, "demo")                 # what the admin view shows

`next_task` and `submit` each open one write transaction; the steps inside them (`open_assignments`,
`claim_task`, `task_payload`, `store_judgment`) take the caller's session, so `simulate.fill_campaign`
runs many judgments through the same checks in one transaction.

Guarantees:
- an annotator is given tasks only of campaigns they were added to (`campaign_annotators`), unless
  store-wide (`all_campaigns`); to anyone else a campaign answers like one that does not exist;
- a task goes to at most `overlap` annotators and never twice to one annotator (unique
  (task, annotator) plus an atomic conditional increment of `tasks.n_assigned`);
- the responses are shown in an order shuffled per assignment, labelled a, b, c...; annotators
  never see a response id or the model that produced it;
- a submission carries a client-made idempotency key: the same key again returns the stored
  judgment ("duplicate") instead of storing a second one, so retries and double clicks are safe;
- a skipped task is never shown again to that annotator, and its slot is handed to someone else;
- an assignment is leased (the campaign's `lease_seconds`, or the server's): when the lease expires
  unanswered, the slot goes back to the queue (`release_expired`, run before each claim, with
  `store.clock` as "now", which tests replace). The holder's late answer is stored, once, only if
  the task still has a free slot; otherwise it is a 409 "lease_expired" and nothing is stored. A
  holder who comes back gets their lapsed task again if nobody took the slot meanwhile; a reload
  (the same task asked for again) starts the lease again.
Left out: per-annotator quotas, extending a lease while the page stays open without a reload.
"""

from __future__ import annotations

import random
import statistics
import string
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, selectinload

from rlhfkit.feedback.agreement import disagreement, krippendorff_alpha_nominal, loo_majority_agreement
from rlhfkit.feedback.store import (
    MAX_ID,
    Annotator,
    Assignment,
    Campaign,
    CampaignAnnotator,
    Judgment,
    Prompt,
    Response,
    Store,
    Task,
    TaskItem,
    WebSession,
    hash_token,
    new_token,
    storable,
    utcnow,
)

LETTERS = string.ascii_lowercase
OUTCOMES = ("tie", "both_bad", "skip")
MAX_RATIONALE = 5000
MAX_SECONDS = 24 * 3600.0


class ServiceError(Exception):
    """A request that cannot be served; `status` is the HTTP status the web app answers with, `code`
    a stable name for the pages to act on (e.g. "lease_expired")."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def check_text(value: str, where: str) -> str:
    """`value`, if the store can hold it (no NUL, no unpaired surrogate); else a 422 naming `where`."""
    if not storable(value):
        raise ServiceError(422, f"{where} contains a NUL or an unpaired surrogate character; remove it")
    return value


@dataclass(frozen=True)
class Who:
    id: int
    name: str


# ---------------------------------------------------------------------------------------------
# annotators


def add_annotator(store: Store, name: str, simulated: bool = False, campaigns: list[str] | tuple = (),
                  all_campaigns: bool = False) -> str:
    """Create an annotator who may judge `campaigns` (or, with `all_campaigns`, every campaign of the
    store) and return their access token (shown once). Asking again for an existing *simulated*
    annotator gives it a new token: the old one, and its sessions, stop working at once."""
    name = check_text(name.strip(), "the annotator name")
    if not name or len(name) > 200:
        raise ServiceError(422, "an annotator name must have 1 to 200 characters")
    token = new_token()
    try:
        with store.write() as session:
            row = session.scalar(select(Annotator).where(Annotator.name == name))
            if row is None:
                row = Annotator(name=name, token_hash=hash_token(token), simulated=simulated,
                                all_campaigns=all_campaigns)
                session.add(row)
                session.flush()
            elif simulated and row.simulated:
                row.token_hash = hash_token(token)
                row.all_campaigns = row.all_campaigns or all_campaigns
                session.execute(delete(WebSession).where(WebSession.annotator_id == row.id))
            else:
                raise ServiceError(409, f"annotator {name!r} already exists")
            join_campaigns(session, row.id, campaigns)
    except IntegrityError:
        raise ServiceError(409, f"annotator {name!r} already exists") from None
    return token


def add_to_campaigns(store: Store, name: str, campaigns: list[str] | tuple) -> None:
    """Let an existing annotator judge these campaigns too (their token stays as it was)."""
    with store.write() as session:
        annotator_id = session.scalar(select(Annotator.id).where(Annotator.name == name))
        if annotator_id is None:
            raise ServiceError(404, f"no annotator named {name!r}")
        join_campaigns(session, annotator_id, campaigns)


def join_campaigns(session: Session, annotator_id: int, campaigns: list[str] | tuple) -> None:
    """Add the annotator to each named campaign (in the caller's transaction), once."""
    for name in campaigns:
        campaign_id = get_campaign(session, name, ready_only=False).id
        if session.get(CampaignAnnotator, (campaign_id, annotator_id)) is None:
            session.add(CampaignAnnotator(campaign_id=campaign_id, annotator_id=annotator_id))
    session.flush()


_MEMBER = select(CampaignAnnotator.annotator_id).where(
    CampaignAnnotator.campaign_id == bindparam("campaign_id"), CampaignAnnotator.annotator_id == Annotator.id).exists()
_MAY_JUDGE = select(Annotator.all_campaigns | _MEMBER).where(Annotator.id == bindparam("annotator_id"))


def may_judge(session: Session, campaign_id: int, annotator_id: int) -> bool:
    """Whether the annotator was added to the campaign, or is store-wide."""
    return bool(session.scalar(_MAY_JUDGE, {"campaign_id": campaign_id, "annotator_id": annotator_id}))


def annotator_for_token(store: Store, token: str) -> Who | None:
    if not token or len(token) > 200:
        return None
    with store.read() as session:
        row = session.scalar(select(Annotator).where(Annotator.token_hash == hash_token(token)))
        return Who(row.id, row.name) if row else None


def get_campaign(session: Session, name: str, ready_only: bool = True) -> Campaign:
    check_text(name, "the campaign name")
    campaign = session.scalar(select(Campaign).where(Campaign.name == name))
    if campaign is None:
        raise ServiceError(404, f"no campaign named {name!r}")
    if ready_only and not campaign.ready:
        raise ServiceError(404, f"campaign {name!r} is still being written by `rlhfkit campaign`; try again when it is done")
    return campaign


def list_campaigns(store: Store, annotator_id: int | None = None) -> list[str]:
    """The ready campaigns, oldest first; with `annotator_id`, only those that annotator may judge."""
    query = select(Campaign.name).where(Campaign.ready).order_by(Campaign.id)
    with store.read() as session:
        if annotator_id is not None and not session.scalar(
                select(Annotator.all_campaigns).where(Annotator.id == annotator_id)):
            query = query.join(CampaignAnnotator, CampaignAnnotator.campaign_id == Campaign.id).where(
                CampaignAnnotator.annotator_id == annotator_id)
        return list(session.scalars(query))


# ---------------------------------------------------------------------------------------------
# assignment: `next_task` is three steps, each run in the caller's write transaction, so that
# `simulate.fill_campaign` can take many turns in one transaction with the same code

# The statements run once per judgment are built once, here, with bind parameters: building a
# SQLAlchemy statement costs several times what running it costs on SQLite (~0.25 vs ~0.05 ms).
_seen_by_annotator = select(Assignment.id).where(
    Assignment.task_id == Task.id, Assignment.annotator_id == bindparam("annotator_id")).exists()
_LEAST_COVERED = (select(Task.id)
                  .where(Task.campaign_id == bindparam("campaign_id"), Task.n_assigned < Task.overlap,
                         ~_seen_by_annotator)
                  .order_by(Task.n_assigned, Task.id).limit(16))
_CLAIM_SLOT = (update(Task).where(Task.id == bindparam("task_id"), Task.n_assigned < Task.overlap)
               .values(n_assigned=Task.n_assigned + 1)
               .execution_options(synchronize_session=False))  # no Task objects are loaded to sync
_RESPONSE_IDS = select(TaskItem.response_id).where(TaskItem.task_id == bindparam("task_id")).order_by(TaskItem.slot)
_TASK_TEXTS = (select(Prompt.text, TaskItem.response_id, Response.text).select_from(TaskItem)
               .join(Response, Response.id == TaskItem.response_id).join(Task, Task.id == TaskItem.task_id)
               .join(Prompt, Prompt.id == Task.prompt_id).where(TaskItem.task_id == bindparam("task_id")))
_JUDGMENT_BY_KEY = select(Judgment.id, Judgment.assignment_id).where(
    Judgment.annotator_id == bindparam("annotator_id"), Judgment.idempotency_key == bindparam("key"))
# the assignment, its campaign and its judgment if any, in one statement
_ASSIGNMENT_AND_CAMPAIGN = (select(Assignment, Campaign, Judgment.id.label("judgment_id"))
                            .join(Task, Task.id == Assignment.task_id).join(Campaign, Campaign.id == Task.campaign_id)
                            .outerjoin(Judgment, Judgment.assignment_id == Assignment.id)
                            .where(Assignment.id == bindparam("assignment_id")))
# a judgment ends the lease, but only of an assignment still held: rowcount 0 means it lapsed
_END_LEASE = (update(Assignment).where(Assignment.id == bindparam("assignment_id"), Assignment.released_at.is_(None))
              .values(lease_expires_at=None).execution_options(synchronize_session=False))
_RENEW = (update(Assignment).where(Assignment.id == bindparam("assignment_id"), Assignment.released_at.is_(None))
          .values(lease_expires_at=bindparam("expires_at")).execution_options(synchronize_session=False))
_RETAKE = (update(Assignment).where(Assignment.id == bindparam("assignment_id"))
           .values(released_at=None, lease_expires_at=bindparam("expires_at"))
           .execution_options(synchronize_session=False))
RELEASE_BATCH = 500
_EXPIRED = (select(Assignment.id).where(Assignment.lease_expires_at < bindparam("now"))
            .order_by(Assignment.id).limit(RELEASE_BATCH).with_for_update(skip_locked=True))


def lease_end(campaign: Campaign, now: datetime, lease_seconds: int | None = None) -> datetime:
    """When a lease taken `now` expires: the campaign's lease length unless the server overrides it."""
    return now + timedelta(seconds=lease_seconds or campaign.lease_seconds)


def release_expired(session: Session, now: datetime) -> int:
    """Give the slots of expired leases back to their tasks' queues; returns how many were released.

    The expired rows are locked first, in id order, skipping rows another transaction is releasing
    (PostgreSQL: FOR UPDATE SKIP LOCKED), so two releasers never wait on each other nor free a slot
    twice; SQLite has one writer at a time anyway. Assignment rows are always locked before task rows."""
    ids = list(session.scalars(_EXPIRED, {"now": now}))
    if not ids:
        return 0
    task_ids = list(session.scalars(
        update(Assignment).where(Assignment.id.in_(ids), Assignment.lease_expires_at < now)
        .values(lease_expires_at=None, released_at=now, lapses=Assignment.lapses + 1)
        .returning(Assignment.task_id).execution_options(synchronize_session=False)))
    for task_id, count in sorted(Counter(task_ids).items()):
        session.execute(update(Task).where(Task.id == task_id).values(n_assigned=Task.n_assigned - count)
                        .execution_options(synchronize_session=False))
    return len(task_ids)


def open_assignments(session: Session, campaign_id: int, annotator_ids: list[int],
                     lapsed: bool = False) -> dict[int, list[Assignment]]:
    """Per annotator, the assignments shown but not judged yet (a reload, a lost connection), oldest
    first: those still held; with `lapsed` also those whose lease expired (`released_at` set)."""
    judged = select(Judgment.id).where(Judgment.assignment_id == Assignment.id).exists()
    query = (select(Assignment).join(Task, Task.id == Assignment.task_id)
             .where(Assignment.annotator_id.in_(annotator_ids), Task.campaign_id == campaign_id, ~judged)
             .order_by(Assignment.id))
    found: dict[int, list[Assignment]] = defaultdict(list)
    for assignment in session.scalars(query if lapsed else query.where(Assignment.released_at.is_(None))):
        found[assignment.annotator_id].append(assignment)
    return found


def retake_lapsed(session: Session, lapsed: list[Assignment], expires_at: datetime) -> Assignment | None:
    """The oldest of these lapsed assignments whose task still has a free slot, held again with a new
    lease (the annotator's page may still show it); None when every such task went to others."""
    for assignment in lapsed:
        if session.execute(_CLAIM_SLOT, {"task_id": assignment.task_id}).rowcount:
            session.execute(_RETAKE, {"assignment_id": assignment.id, "expires_at": expires_at})
            assignment.released_at, assignment.lease_expires_at = None, expires_at
            return assignment
    return None


def claim_task(session: Session, campaign: Campaign, annotator_id: int, rng: random.Random,
               expires_at: datetime | None = None) -> Assignment | None:
    """A new assignment: one of the 16 least-covered tasks this annotator has not seen, picked at random,
    leased until `expires_at` (default: the campaign's lease from now). None when nothing is left for them."""
    expires_at = expires_at or lease_end(campaign, utcnow())
    for _attempt in range(8):
        # 1) least-covered tasks first (gold tasks ride along: their overlap is unbounded); the
        #    index ix_tasks_least_covered hands them over in this order, without a sort
        candidates = list(session.scalars(_LEAST_COVERED, {"campaign_id": campaign.id, "annotator_id": annotator_id}))
        if not candidates:
            return None
        rng.shuffle(candidates)
        for task_id in candidates:
            # 2) claim a slot atomically: no read-then-write race between annotators
            if session.execute(_CLAIM_SLOT, {"task_id": task_id}).rowcount:
                order = list(session.scalars(_RESPONSE_IDS, {"task_id": task_id}))
                rng.shuffle(order)  # 3) hide which side is which model
                assignment = Assignment(task_id=task_id, annotator_id=annotator_id, order=order,
                                        lease_expires_at=expires_at)
                session.add(assignment)
                session.flush()
                return assignment
        # every candidate was claimed by others since we read them (PostgreSQL): read again
    raise ServiceError(503, "the store is busy; try again")


def task_payload(session: Session, campaign: Campaign, assignment: Assignment) -> dict[str, Any]:
    """What the annotator sees of an assignment: the prompt and the responses in the order shown."""
    rows = session.execute(_TASK_TEXTS, {"task_id": assignment.task_id}).all()
    texts = {response_id: text for _, response_id, text in rows}
    return {
        "assignment": assignment.id,
        "campaign": campaign.name,
        "prompt": rows[0][0],
        "responses": [texts[rid] for rid in assignment.order],
        "labels": list(LETTERS[:len(assignment.order)]),
        "rubric": campaign.rubric,
        "guidelines": campaign.guidelines,
        "require_rationale": campaign.require_rationale,
    }


def _progress(session: Session, campaign_id: int, annotator_id: int, open_now: int) -> dict[str, int]:
    """Judgments done in this campaign, and tasks this annotator could still be given (plus the
    `open_now` assignments shown but not judged)."""
    in_campaign = Task.campaign_id == campaign_id
    done = (select(func.count(Judgment.id)).join(Task, Task.id == Judgment.task_id)
            .where(Judgment.annotator_id == annotator_id, in_campaign))
    seen = select(Assignment.id).where(Assignment.task_id == Task.id, Assignment.annotator_id == annotator_id).exists()
    free = select(func.count(Task.id)).where(in_campaign, Task.n_assigned < Task.overlap, ~seen)
    done, free = session.execute(select(done.scalar_subquery(), free.scalar_subquery())).one()
    return {"done": done, "remaining": free + open_now}


def next_task(store: Store, annotator_id: int, campaign_name: str, seed: int | None = None,
              lease_seconds: int | None = None) -> dict[str, Any] | None:
    """The annotator's open assignment if any, else a lapsed one taken back, else a newly claimed task;
    None when none is left. Expired leases (of anyone) go back to the queue first. `lease_seconds`
    overrides the campaign's lease length (`rlhfkit serve --lease-seconds`)."""
    check_text(campaign_name, "the campaign name")
    rng = random.Random(seed)
    for _attempt in range(8):
        try:
            with store.write() as session:
                now = store.clock()
                campaign = get_campaign(session, campaign_name)
                if not may_judge(session, campaign.id, annotator_id):  # as if it did not exist
                    raise ServiceError(404, f"no campaign named {campaign_name!r}")
                release_expired(session, now)
                unjudged = open_assignments(session, campaign.id, [annotator_id], lapsed=True).get(annotator_id, [])
                resumed = [a for a in unjudged if a.released_at is None]
                expires_at = lease_end(campaign, now, lease_seconds)
                if resumed:  # a reload: the holder is still there, so the lease starts again
                    assignment = resumed[0]
                    session.execute(_RENEW, {"assignment_id": assignment.id, "expires_at": expires_at})
                else:
                    assignment = (retake_lapsed(session, [a for a in unjudged if a.released_at is not None], expires_at)
                                  or claim_task(session, campaign, annotator_id, rng, expires_at))
                if assignment is None:
                    return None
                open_now = len(resumed) or 1  # without earlier ones, the one claimed now is open
                return {**task_payload(session, campaign, assignment),
                        "progress": _progress(session, campaign.id, annotator_id, open_now)}
        except IntegrityError:
            continue  # the same annotator claimed the same task in a parallel request: try again
        except DBAPIError as exc:
            if not _deadlock(exc):
                raise
    raise ServiceError(503, "the store is busy; try again")


def _deadlock(exc: DBAPIError) -> bool:
    """PostgreSQL aborted the transaction to break a lock cycle (two annotators' requests releasing
    and claiming the same tasks); the request is simply tried again."""
    return getattr(exc.orig, "sqlstate", None) in ("40P01", "40001")


# ---------------------------------------------------------------------------------------------
# submission


def _letter_index(value: Any, k: int, where: str) -> int:
    if not isinstance(value, str) or len(value) != 1 or value not in LETTERS[:k]:
        raise ServiceError(422, f"{where} must be one of {', '.join(LETTERS[:k])}; got {value!r}")
    return LETTERS.index(value)


def parse_judgment(body: dict[str, Any], order: list[int], rubric: list[dict], policy: str) -> dict[str, Any]:
    """Check a submission against the assignment; map letters (display positions) to response ids."""
    k = len(order)
    outcome = body.get("outcome")
    ranking_letters = body.get("ranking")
    criteria_in = body.get("criteria") or {}
    rationale = body.get("rationale") or ""
    if not isinstance(rationale, str) or len(rationale) > MAX_RATIONALE:
        raise ServiceError(422, f"rationale must be text of at most {MAX_RATIONALE} characters")
    check_text(rationale, "rationale")
    if not isinstance(criteria_in, dict):
        raise ServiceError(422, "criteria must be an object {criterion: letter or 'tie'}")
    ranking: list[int] | None = None
    if outcome in OUTCOMES:
        stored_outcome = outcome
    else:
        if ranking_letters is not None:
            if not isinstance(ranking_letters, list) or len(ranking_letters) != k:
                raise ServiceError(422, f"ranking must list all {k} responses, best first")
            positions = [_letter_index(v, k, "each ranking entry") for v in ranking_letters]
            if sorted(positions) != list(range(k)):
                raise ServiceError(422, "ranking must name each response exactly once")
            if outcome is not None and _letter_index(outcome, k, "outcome") != positions[0]:
                raise ServiceError(422, "outcome and the first entry of ranking disagree")
        elif k == 2:
            first = _letter_index(outcome, k, "outcome")
            positions = [first, 1 - first]
        else:
            raise ServiceError(422, f"with {k} responses send a full ranking (best first), or tie/both_bad/skip")
        ranking = [order[p] for p in positions]
        stored_outcome = "ranked"
    keys = {c["key"] for c in rubric}
    criteria: dict[str, int | str] = {}
    if stored_outcome != "skip":
        for key, value in criteria_in.items():
            if key not in keys:
                raise ServiceError(422, f"unknown criterion {key!r}; this campaign's rubric: {', '.join(sorted(keys))}")
            criteria[key] = "tie" if value == "tie" else order[_letter_index(value, k, f"criteria.{key}")]
    close_call = stored_outcome in ("tie", "both_bad") or (
        ranking is not None and any(v != ranking[0] for v in criteria.values()))
    if stored_outcome != "skip" and not rationale.strip() and (
            policy == "always" or (policy == "close" and close_call)):
        why = "every judgment" if policy == "always" else "a close call (tie, both bad, or criteria that disagree)"
        raise ServiceError(422, f"this campaign asks for a rationale on {why}")
    seconds = body.get("seconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))):
        raise ServiceError(422, "seconds must be a number")
    keep_rationale = stored_outcome != "skip" or body.get("probabilities") is not None
    return {"outcome": stored_outcome, "ranking": ranking, "criteria": criteria,
            "rationale": rationale.strip() if keep_rationale else "", "seconds": seconds,
            **_soft_label(body, order)}


def _soft_label(body: dict[str, Any], order: list[int]) -> dict[str, Any]:
    """An AI judge's soft label {letter: probability} as {response id: probability}, and its principle."""
    principle = body.get("principle") or ""
    if not isinstance(principle, str) or len(principle) > MAX_RATIONALE:
        raise ServiceError(422, f"principle must be text of at most {MAX_RATIONALE} characters")
    check_text(principle, "principle")
    soft = body.get("probabilities")
    if soft is None:
        return {"probabilities": None, "principle": principle.strip()}
    k = len(order)
    if not isinstance(soft, dict) or sorted(soft) != list(LETTERS[:k]):
        raise ServiceError(422, f"probabilities must give each of {', '.join(LETTERS[:k])} a probability")
    values = list(soft.values())
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1 for v in values) \
            or abs(sum(values) - 1) > 1e-3:
        raise ServiceError(422, "probabilities must be numbers in [0, 1] that sum to 1")
    return {"probabilities": {str(order[_letter_index(letter, k, "probabilities")]): float(v)
                              for letter, v in soft.items()}, "principle": principle.strip()}


def store_judgment(session: Session, annotator_id: int, body: dict[str, Any],
                   now: datetime | None = None) -> dict[str, Any]:
    """Check one submission and store it, once per idempotency key, in the caller's write transaction.
    Returns {"status": "stored"|"duplicate", "id"}. An answer to a lapsed assignment counts only if
    its task still has a free slot (409 "lease_expired" otherwise)."""
    key = body.get("key")
    if not isinstance(key, str) or not 8 <= len(key) <= 100:
        raise ServiceError(422, "key (an idempotency key of 8 to 100 characters, new per task) is required")
    check_text(key, "key")
    assignment_id = body.get("assignment")
    if isinstance(assignment_id, bool) or not isinstance(assignment_id, int) or not 1 <= assignment_id <= MAX_ID:
        raise ServiceError(422, "assignment must be the integer id given with the task")
    # 1) the same key again: the earlier result, nothing new stored
    earlier = session.execute(_JUDGMENT_BY_KEY, {"annotator_id": annotator_id, "key": key}).first()
    if earlier is not None:
        if earlier.assignment_id != assignment_id:
            raise ServiceError(409, "this idempotency key was already used for another task")
        return {"status": "duplicate", "id": earlier.id}
    # 2) only one's own assignments exist, as far as an annotator can tell
    found = session.execute(_ASSIGNMENT_AND_CAMPAIGN, {"assignment_id": assignment_id}).first()
    if found is None or found.Assignment.annotator_id != annotator_id:
        raise ServiceError(404, f"no assignment {assignment_id} for you")
    assignment, campaign, judgment_id = found
    if judgment_id is not None:
        raise ServiceError(409, "this task is already judged (with another idempotency key)")
    parsed = parse_judgment(body, assignment.order, campaign.rubric, campaign.require_rationale)
    # 3) the lease: held, it ends here; lapsed, a late answer takes a slot back if one is free
    held = session.execute(_END_LEASE, {"assignment_id": assignment_id}).rowcount == 1
    if not held and parsed["outcome"] != "skip":
        release_expired(session, now or utcnow())  # other lapsed leases may have freed a slot
        if not session.execute(_CLAIM_SLOT, {"task_id": assignment.task_id}).rowcount:
            raise ServiceError(409, "your time for this task ran out and it went to other annotators, so this "
                                    "answer was not stored; here is your next task", code="lease_expired")
    if parsed["seconds"] is None:
        parsed["seconds"] = ((now or utcnow()) - assignment.created_at).total_seconds()
    parsed["seconds"] = min(max(float(parsed["seconds"]), 0.0), MAX_SECONDS)
    judgment = Judgment(assignment_id=assignment_id, task_id=assignment.task_id, annotator_id=annotator_id,
                        idempotency_key=key, **parsed)
    session.add(judgment)
    if parsed["outcome"] == "skip" and held:  # 4) free the slot for someone else (a lapsed one is free)
        session.execute(update(Task).where(Task.id == assignment.task_id).values(n_assigned=Task.n_assigned - 1))
    session.flush()
    return {"status": "stored", "id": judgment.id}


def submit(store: Store, annotator_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """Store one judgment, once per idempotency key. Returns {"status": "stored"|"duplicate", "id"}."""
    for _attempt in range(3):
        try:
            with store.write() as session:
                return store_judgment(session, annotator_id, body, store.clock())
        except IntegrityError:
            continue  # a parallel copy of this submission won the race: step 1 now finds it
        except DBAPIError as exc:
            if not _deadlock(exc):
                raise
    raise ServiceError(503, "the store is busy; try again")


def my_summary(store: Store, annotator_id: int) -> dict[str, Any]:
    """What an annotator may know about their own work: counts per campaign, nothing about others."""
    with store.read() as session:
        rows = session.execute(
            select(Campaign.name, func.count(Judgment.id)).join(Task, Task.campaign_id == Campaign.id)
            .join(Judgment, Judgment.task_id == Task.id).where(Judgment.annotator_id == annotator_id)
            .group_by(Campaign.name)).all()
        return {"judged": {name: count for name, count in rows}}


# ---------------------------------------------------------------------------------------------
# reading judgments back: pairwise units for agreement, aggregation and export


def pair_label(judgment_outcome: str, ranking: list[int] | None, first: int, second: int) -> str | None:
    """The label of one judgment on the pair (first, second) of response ids."""
    if judgment_outcome in ("tie", "both_bad"):
        return judgment_outcome
    if judgment_outcome != "ranked" or ranking is None:
        return None
    return "first" if ranking.index(first) < ranking.index(second) else "second"


def load_judgments(session: Session, campaign: Campaign) -> tuple[list[Task], list[Judgment]]:
    tasks = list(session.scalars(select(Task).where(Task.campaign_id == campaign.id).options(
        selectinload(Task.items).selectinload(TaskItem.response), selectinload(Task.prompt))))
    judgments = list(session.scalars(select(Judgment).join(Task).where(Task.campaign_id == campaign.id)
                                     .options(selectinload(Judgment.annotator), selectinload(Judgment.assignment))
                                     .order_by(Judgment.id)))
    return tasks, judgments


def pair_votes(tasks: list[Task], judgments: list[Judgment], include_gold: bool = False) -> list[tuple]:
    """(unit, annotator name, label) for every pair of responses of every judged task.
    A unit is (task id, first response id, second response id) in the task's stored slot order."""
    by_task = {t.id: t for t in tasks}
    votes = []
    for j in judgments:
        task = by_task[j.task_id]
        if j.outcome == "skip" or (task.gold is not None and not include_gold):
            continue
        ids = task.response_ids
        for i in range(len(ids)):
            for k in range(i + 1, len(ids)):
                label = pair_label(j.outcome, j.ranking, ids[i], ids[k])
                if label is not None:
                    votes.append(((task.id, ids[i], ids[k]), j.annotator.name, label))
    return votes


def _leases_expired(session: Session, campaign_id: int) -> dict[str, int]:
    """Per annotator, how many of their leases in the campaign expired without an answer."""
    rows = session.execute(
        select(Annotator.name, func.sum(Assignment.lapses)).join(Assignment, Assignment.annotator_id == Annotator.id)
        .join(Task, Task.id == Assignment.task_id).where(Task.campaign_id == campaign_id, Assignment.lapses > 0)
        .group_by(Annotator.name)).all()
    return {name: int(count) for name, count in rows}


def campaign_stats(store: Store, campaign_name: str, top_disputed: int = 10) -> dict[str, Any]:
    """Progress, per-annotator numbers, agreement and the most-disputed comparisons of a campaign."""
    with store.read() as session:
        campaign = get_campaign(session, campaign_name)
        tasks, judgments = load_judgments(session, campaign)
        lapsed = _leases_expired(session, campaign.id)
    regular = [t for t in tasks if t.gold is None]
    gold = {t.id: t.gold for t in tasks if t.gold is not None}
    votes = pair_votes(tasks, judgments)
    alpha = krippendorff_alpha_nominal(votes)
    loo, loo_by_annotator = loo_majority_agreement(votes)
    # 1) progress: judgments (skips excluded) against the slots the campaign asks for
    judged_per_task = Counter(j.task_id for j in judgments if j.outcome != "skip")
    wanted = sum(t.overlap for t in regular)
    done = sum(min(judged_per_task[t.id], t.overlap) for t in regular)
    # 2) per annotator
    per: dict[str, dict[str, Any]] = defaultdict(lambda: {"count": 0, "skips": 0, "seconds": [], "gold": []})
    for name in lapsed:
        per[name]  # someone whose leases expired may have judged nothing yet
    for j in judgments:
        row = per[j.annotator.name]
        if j.outcome == "skip":
            row["skips"] += 1
            continue
        row["count"] += 1
        row["seconds"].append(j.seconds)
        if j.task_id in gold:
            row["gold"].append(1.0 if j.ranking and j.ranking[0] == gold[j.task_id][0] else 0.0)
    annotators = []
    for name, row in sorted(per.items()):
        annotators.append({
            "annotator": name, "count": row["count"], "skips": row["skips"],
            "median_seconds": statistics.median(row["seconds"]) if row["seconds"] else None,
            "agreement_with_majority": loo_by_annotator.get(name),
            "gold_accuracy": sum(row["gold"]) / len(row["gold"]) if row["gold"] else None,
            "gold_judged": len(row["gold"]),
            "leases_expired": lapsed.get(name, 0),
        })
    # 3) the comparisons people disagree on most
    by_unit: dict[tuple, list[tuple[str, str]]] = defaultdict(list)
    for unit, who, label in votes:
        by_unit[unit].append((who, label))
    prompt_of = {t.id: t.prompt.text for t in tasks}
    disputed = sorted(((disagreement([lab for _, lab in v]), unit, v) for unit, v in by_unit.items() if len(v) >= 2),
                      key=lambda x: (-x[0], x[1]))[:top_disputed]
    return {
        "campaign": campaign.name,
        "tasks": len(regular), "gold_tasks": len(gold),
        "judgments": sum(1 for j in judgments if j.outcome != "skip"),
        "skips": sum(1 for j in judgments if j.outcome == "skip"),
        "progress": {"done": done, "wanted": wanted, "fraction": done / wanted if wanted else 0.0},
        "krippendorff_alpha": alpha,
        "loo_majority_agreement": loo,
        "annotators": annotators,
        "disputed": [{"task": unit[0], "prompt": prompt_of[unit[0]], "disagreement": d,
                      "votes": dict(Counter(lab for _, lab in v))} for d, unit, v in disputed if d > 0],
    }
