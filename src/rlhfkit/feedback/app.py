"""The annotation web app (FastAPI): annotators judge comparisons, the admin watches agreement and exports.

    rlhfkit serve --db feedback.db --port 8000      # then open the login link it prints
    app = create_app(Store.open("feedback.db"))     # from Python (tests run it under uvicorn)

Pages: /login, /annotate (the annotator view), /admin. JSON API under /api (the pages use it, and so
can scripts with `Authorization: Bearer TOKEN`):
    POST /api/login {"token", "replace"?} starts a server-side session: the HttpOnly, SameSite=Strict
                                         cookie holds a random session id, never the token; over a
                                         session of someone else it is a 409 "logged_in_as" unless
                                         "replace" is true (the login page asks first)
    POST /api/logout                     ends the session (JSON and the CSRF token, as every write)
    GET  /api/task?campaign=NAME         the next comparison for the caller (or 204 when done)
    POST /api/judgments {...}            one judgment; idempotent by its "key"; 409 with "code":
                                         "lease_expired" when the task went to others meanwhile
    GET  /api/me                         the caller's own counts
    GET  /api/admin/campaigns[/NAME/stats|/NAME/export] and POST /api/admin/annotators   (admin only)
An annotator sees and judges only the campaigns they were added to (`rlhfkit campaign --annotators`,
or "campaigns" in POST /api/admin/annotators), unless made store-wide ("all_campaigns").
A campaign NAME may hold '/' (`team/demo`): the admin routes take the rest of the path up to the last
segment, and `campaigns.check_campaign_name` refuses, at creation, names a URL cannot carry.

Safety: model outputs and rationales are untrusted. Pages are Jinja2 templates with autoescape and
contain no model text; the scripts put text into the page with `textContent` only, and a strict
Content-Security-Policy (scripts from this origin only, no inline script) backs that up. Requests
that change state must be JSON (a cross-site form cannot send that) and, when authenticated by the
cookie, carry the page's CSRF token in `X-CSRF-Token`. Bodies over `max_body` bytes get 413.
Malformed input is a 4xx with {"error"} before any query sees it: ids outside 1..2**31-1 (PostgreSQL's
INTEGER), text with NUL or unpaired surrogates (`service.check_text`), bodies that do not parse.
Annotators can only reach their own assignments; every admin route checks the admin token.
Tokens and sessions are looked up on every request (`sessions`), so a replaced token or a logout
takes effect at once.
Left out: TLS (put a reverse proxy in front for anything beyond loopback), rate limiting, accounts
with passwords.
"""

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from rlhfkit.feedback import service, sessions
from rlhfkit.feedback.export import EXPORT_METHODS, preference_rows
from rlhfkit.feedback.service import ServiceError
from rlhfkit.feedback.sessions import Identity
from rlhfkit.feedback.store import MAX_ID, Store

HERE = Path(__file__).parent
COOKIE = "rlhfkit_session"
MAX_BODY = 64 * 1024
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def csrf_token(session_id: str) -> str:
    """Derived from the session id (an HttpOnly cookie), so a page of another site cannot compute it."""
    return hmac.new(session_id.encode(), b"rlhfkit-csrf", hashlib.sha256).hexdigest()


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=200)
    replace: bool = False


class JudgmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assignment: int = Field(ge=1, le=MAX_ID, strict=True)
    key: str = Field(min_length=8, max_length=100)
    outcome: str | None = Field(default=None, max_length=10)
    ranking: list[str] | None = Field(default=None, max_length=26)
    criteria: dict[str, str] = Field(default_factory=dict, max_length=50)
    rationale: str = Field(default="", max_length=service.MAX_RATIONALE)
    seconds: float | None = Field(default=None, ge=0)


class AnnotatorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    simulated: bool = False
    campaigns: list[str] = Field(default_factory=list, max_length=100)
    all_campaigns: bool = False


@dataclass
class Caller:
    """An authenticated request: who, and how (a bearer token, or the session cookie `session_id`)."""

    identity: Identity
    session_id: str | None = None  # None: a bearer token, which needs no CSRF token

    @property
    def annotator(self) -> service.Who:
        assert self.identity.annotator is not None
        return self.identity.annotator


class BodyLimit:
    """ASGI middleware: answer 413 to a request body over `limit` bytes, declared or streamed."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = PlainTextResponse(f"request body over {self.limit} bytes", status_code=413)
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await too_big(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                return await too_big(scope, receive, send)
        body = b"".join(chunks)
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app(store: Store, max_body: int = MAX_BODY, lease_seconds: int | None = None) -> FastAPI:
    """The app over `store`; `lease_seconds` overrides every campaign's lease length when set."""
    app = FastAPI(title="rlhfkit feedback", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.add_middleware(BodyLimit, limit=max_body)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    media = store.media_folder()
    if media is not None:  # animations of `rlhfkit control`'s segment pairs (404 until there are some)
        app.mount("/media", StaticFiles(directory=media, check_dir=False), name="media")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(ServiceError)
    async def service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        body = {"error": exc.message} if exc.code is None else {"error": exc.message, "code": exc.code}
        return JSONResponse(body, status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        # the framework's own 4xx (a body that does not parse, an unknown route) in the API's shape
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return JSONResponse({"error": "; ".join(problems) or "malformed request"}, status_code=422)

    _add_pages(app, store)
    _add_session_routes(app, store)
    _add_api(app, store, lease_seconds)
    return app


# -- who is calling ---------------------------------------------------------------------------


def identify(store: Store, request: Request) -> Caller | None:
    """A bearer token if the request has one, else the session cookie; looked up every time."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        identity = sessions.identify_token(store, header[7:].strip())
        return Caller(identity) if identity else None
    session_id = request.cookies.get(COOKIE, "")
    identity = sessions.find_session(store, session_id)
    return Caller(identity, session_id) if identity else None


def check_write(request: Request, caller: Caller | None) -> None:
    """A state-changing request must be JSON and, when the session cookie authenticates it, carry the
    page's CSRF token: a cross-site form can send neither."""
    if request.method in ("GET", "HEAD"):
        return
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise ServiceError(415, "send JSON (Content-Type: application/json)")
    if caller is not None and caller.session_id is not None:
        # bytes: compare_digest refuses str with non-ASCII characters, which a header may carry
        sent = request.headers.get("x-csrf-token", "").encode("latin-1", "replace")
        if not hmac.compare_digest(sent, csrf_token(caller.session_id).encode()):
            raise ServiceError(403, "missing or wrong CSRF token; reload the page")


def _dependencies(store: Store) -> tuple[Any, Any]:
    def annotator(request: Request) -> Caller:
        caller = identify(store, request)
        if caller is None or caller.identity.annotator is None:
            raise ServiceError(401, "log in with your annotator token")
        check_write(request, caller)
        return caller

    def admin(request: Request) -> Caller:
        caller = identify(store, request)
        if caller is None or not caller.identity.admin:
            raise ServiceError(403 if caller else 401, "this needs the admin token")
        check_write(request, caller)
        return caller

    return Annotated[Caller, Depends(annotator)], Annotated[Caller, Depends(admin)]


# -- pages ------------------------------------------------------------------------------------


def _add_pages(app: FastAPI, store: Store) -> None:
    templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))

    def page(template: str, **context: Any) -> HTMLResponse:
        return HTMLResponse(templates.get_template(template).render(**context))

    @app.get("/")
    def home() -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)

    @app.get("/login")
    def login_page(request: Request) -> HTMLResponse:
        caller = identify(store, request)  # the page asks before a link replaces this identity
        current = caller.identity.name if caller and caller.session_id else ""
        return page("login.html", title="Log in", current=current,
                    current_next="/admin" if caller and caller.identity.admin else "/annotate",
                    csrf=csrf_token(caller.session_id) if caller and caller.session_id else "")

    @app.get("/annotate")
    def annotate_page(request: Request) -> Response:
        caller = identify(store, request)
        if caller is None or caller.identity.annotator is None or caller.session_id is None:
            return RedirectResponse("/login", status_code=303)
        return page("annotate.html", title="Annotate", csrf=csrf_token(caller.session_id), name=caller.annotator.name,
                    campaigns=service.list_campaigns(store, caller.annotator.id))

    @app.get("/admin")
    def admin_page(request: Request) -> Response:
        caller = identify(store, request)
        if caller is None or not caller.identity.admin or caller.session_id is None:
            return RedirectResponse("/login", status_code=303)
        return page("admin.html", title="Admin", csrf=csrf_token(caller.session_id))


# -- login and logout -------------------------------------------------------------------------


def _add_session_routes(app: FastAPI, store: Store) -> None:
    @app.post("/api/login")
    def login(body: LoginIn, request: Request) -> JSONResponse:
        check_write(request, None)  # JSON only; there is no session yet whose CSRF token to check
        identity = sessions.identify_token(store, body.token)
        if identity is None:
            raise ServiceError(401, "unknown token; ask the campaign's admin for yours")
        old_id = request.cookies.get(COOKIE, "")
        current = sessions.find_session(store, old_id)
        if current is not None and current != identity and not body.replace:
            raise ServiceError(409, f"you are logged in as {current.name}; this link is for someone else",
                               code="logged_in_as")
        if current is not None:
            sessions.close_session(store, old_id)
        response = JSONResponse({"next": "/admin" if identity.admin else "/annotate"})
        response.set_cookie(COOKIE, sessions.open_session(store, identity), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", max_age=sessions.SESSION_SECONDS)
        return response

    @app.post("/api/logout")
    def logout(request: Request) -> JSONResponse:
        caller = identify(store, request)
        check_write(request, caller)  # a cross-site form cannot end someone's session
        if caller is not None and caller.session_id is not None:
            sessions.close_session(store, caller.session_id)
        response = JSONResponse({"ok": True})
        response.delete_cookie(COOKIE)
        return response


# -- the API ----------------------------------------------------------------------------------


def _add_api(app: FastAPI, store: Store, lease_seconds: int | None) -> None:
    AnnotatorCaller, AdminCaller = _dependencies(store)

    @app.get("/api/task")
    def task(campaign: str, caller: AnnotatorCaller) -> Response:
        payload = service.next_task(store, caller.annotator.id, campaign, lease_seconds=lease_seconds)
        return Response(status_code=204) if payload is None else JSONResponse(payload)

    @app.post("/api/judgments")
    def judgments(body: JudgmentIn, caller: AnnotatorCaller) -> dict:
        return service.submit(store, caller.annotator.id, body.model_dump())

    @app.get("/api/me")
    def me(caller: AnnotatorCaller) -> dict:
        return {"annotator": caller.annotator.name, **service.my_summary(store, caller.annotator.id)}

    @app.get("/api/admin/campaigns")
    def campaigns(_caller: AdminCaller) -> dict:
        return {"campaigns": service.list_campaigns(store)}

    @app.get("/api/admin/campaigns/{name:path}/stats")
    def stats(name: str, _caller: AdminCaller) -> dict:
        return service.campaign_stats(store, name)

    @app.get("/api/admin/campaigns/{name:path}/export")
    def export(name: str, _caller: AdminCaller, method: str = "majority", tie_policy: str = "drop") -> Response:
        if method not in EXPORT_METHODS or tie_policy not in ("drop", "random"):
            raise ServiceError(422, f"method must be one of {', '.join(EXPORT_METHODS)}; tie_policy drop or random")
        rows = preference_rows(store, name, method=method, tie_policy=tie_policy)
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        filename = "".join(c if c.isalnum() or c in "-_" else "_" for c in name) + ".jsonl"
        return Response(text, media_type="application/x-ndjson",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    @app.post("/api/admin/annotators")
    def new_annotator(body: AnnotatorIn, _caller: AdminCaller) -> dict:
        token = service.add_annotator(store, body.name, body.simulated, campaigns=body.campaigns,
                                      all_campaigns=body.all_campaigns)
        return {"annotator": body.name, "token": token}
