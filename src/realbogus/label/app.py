"""The labelling web app (FastAPI): pages, the JSON API, sessions, CSRF, roles, body limits.

Every page and API route but ``/login``, ``POST /api/login`` and ``/static`` needs a session;
anonymous API requests get 401 (pages redirect to ``/login``), a role too low for a route gets
403, and every write (POST) needs the session's CSRF token in ``X-CSRF-Token``. See
docs/labelling.md for the API.
"""

import inspect
import json
import logging
import random
import time
from collections import deque
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InputError
from .auth import (
    LoginRateLimiter,
    new_token,
    token_hash,
    tokens_match,
    verify_password,
)
from .export import export_csv
from .schema import ROLES
from .service import Service, UploadsOff
from .source import MAX_SCALE

__all__ = ["COOKIE", "create_app"]

COOKIE = "rb_session"
_HERE = Path(__file__).parent
_LOG = logging.getLogger(__name__)
#: Seconds a looked-up session is reused without asking the database (logout clears it at once;
#: a session deleted by another process stays usable here at most this long).
_SESSION_CACHE_S = 5.0
#: Subjects per person that stay viewable after "next" offered them, even once retired.
_OFFERED = 4
#: FastAPI's built-in OpenTelemetry hooks (newer FastAPI) cost ~5 % of a request's CPU here,
#: and nothing exports them: off where the constructor has the option.
_NO_TELEMETRY = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class _BodyLimit:
    """Refuse request bodies over `limit` bytes with 413 (declared or streamed) before the app
    sees them; add the security headers to every response."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.lower().encode(), v.encode()) for k, v in _SECURITY_HEADERS.items()]
                if scope["path"].startswith("/api/"):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        declared = dict(scope.get("headers", [])).get(b"content-length")
        too_big = declared is not None and (not declared.isdigit() or int(declared) > self.limit)
        body = b""
        if not too_big:
            while True:  # read the whole (bounded) body first, then replay it
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                if len(body) > self.limit:
                    too_big = True
                    break
                if not message.get("more_body", False):
                    break
        if too_big:
            response = PlainTextResponse(
                f"request body over {self.limit} bytes refused", status_code=413
            )
            await response(scope, receive, send_with_headers)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_with_headers)


class LoginBody(BaseModel):
    """``POST /api/login``."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class ClassificationBody(BaseModel):
    """``POST /api/classifications``."""

    subject_id: int
    answer: Literal["real", "bogus"]


class GoldLabel(BaseModel):
    """One gold label: 1 Real, 0 Bogus, null to clear."""

    subject_id: int
    label: Literal[0, 1] | None


class GoldBody(BaseModel):
    """``POST /api/admin/gold``."""

    labels: list[GoldLabel] = Field(max_length=100_000)


def _subject_json(row: dict) -> dict:
    sid = int(row["id"])
    return {
        "subject_id": sid,
        "images": {
            "triplet": f"/api/subjects/{sid}/image.png",
            "panels": ["template", "science", "difference"],
            "scaling": "zscale",
        },
        "metadata": json.loads(row["metadata_json"]),
    }


class _NeedLogin(Exception):
    """An anonymous request to a page: redirect to /login."""


def create_app(service: Service) -> FastAPI:
    """The FastAPI app of a prepared `Service` (see `service.prepare_service`)."""
    store, source, cfg = service.store, service.source, service.config
    limiter = LoginRateLimiter(cfg.login_failures, cfg.login_window_s)
    rng = random.Random()
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    app = FastAPI(
        title="realbogus label", docs_url=None, redoc_url=None, openapi_url=None, **_NO_TELEMETRY
    )
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")

    # --- who is asking ----------------------------------------------------------------------

    sessions: dict[str, tuple[float, dict]] = {}  # token hash -> (expiry, user), this process

    # The dependencies are coroutines: FastAPI runs plain functions in a worker thread, a hop
    # that cost more than the check itself; only a session-cache miss asks the database (in a
    # worker thread, so the event loop never waits on it).

    async def _user(request: Request) -> dict | None:
        token = request.cookies.get(COOKIE)
        if not token or len(token) > 128:
            return None
        key = token_hash(token)
        now = time.monotonic()
        hit = sessions.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        user = await run_in_threadpool(store.session_user, key)
        if user is None:
            sessions.pop(key, None)
        else:
            if len(sessions) > 10_000:
                sessions.clear()
            sessions[key] = (now + _SESSION_CACHE_S, user)
        return user

    async def api_user(request: Request) -> dict:
        user = await _user(request)
        if user is None:
            raise HTTPException(401, "sign in first: POST /api/login")
        return user

    async def page_user(request: Request) -> dict:
        user = await _user(request)
        if user is None:
            raise _NeedLogin
        return user

    async def writer(request: Request, user: Annotated[dict, Depends(api_user)]) -> dict:
        if not tokens_match(user["csrf"], request.headers.get("x-csrf-token")):
            raise HTTPException(403, "missing or wrong X-CSRF-Token header")
        return user

    async def admin(user: Annotated[dict, Depends(api_user)]) -> dict:
        if user["role"] != "admin":
            raise HTTPException(403, "admins only")
        return user

    async def admin_writer(user: Annotated[dict, Depends(writer)]) -> dict:
        if user["role"] != "admin":
            raise HTTPException(403, "admins only")
        return user

    @app.exception_handler(_NeedLogin)
    async def _to_login(_request: Request, _exc: _NeedLogin) -> Response:
        return RedirectResponse("/login", status_code=303)

    def page(request: Request, name: str, user: dict | None, **context: object) -> HTMLResponse:
        return templates.TemplateResponse(
            request,
            name,
            {"user": user, "csrf": user["csrf"] if user else "", **context},
        )

    # --- pages ------------------------------------------------------------------------------

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request) -> HTMLResponse:
        return page(request, "login.html", None)

    @app.get("/", response_class=HTMLResponse)
    def label_page(request: Request, user: Annotated[dict, Depends(page_user)]) -> HTMLResponse:
        return page(request, "label.html", user)

    @app.get("/history", response_class=HTMLResponse)
    def history_page(request: Request, user: Annotated[dict, Depends(page_user)]) -> HTMLResponse:
        return page(request, "history.html", user, rows=store.history(user["id"], limit=500))

    @app.get("/admin", response_class=HTMLResponse)
    def admin_page(request: Request, user: Annotated[dict, Depends(page_user)]) -> HTMLResponse:
        if user["role"] != "admin":
            raise HTTPException(403, "admins only")
        vol = service.live.volunteers
        return page(
            request,
            "admin.html",
            user,
            counts=store.counts(),
            strategy=cfg.strategy,
            uploads=service.uploads is not None,
            users=store.list_users(),
            skills=vol.to_dict("records") if len(vol) else [],
        )

    # --- API: sessions ----------------------------------------------------------------------

    @app.post("/api/login")
    def login(request: Request, body: LoginBody, response: Response) -> dict:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise HTTPException(415, "send the login as application/json")
        origin = request.headers.get("origin")
        if origin and origin.rstrip("/") != str(request.base_url).rstrip("/"):
            raise HTTPException(403, "cross-origin login refused")
        client = request.client.host if request.client else "?"
        keys = (f"user:{body.username}", f"addr:{client}")
        wait = limiter.blocked(*keys)
        if wait > 0:
            raise HTTPException(
                429, "too many failed logins; wait and retry", {"Retry-After": str(int(wait) + 1)}
            )
        user = store.user_by_name(body.username)
        if not verify_password(user["password_hash"] if user else None, body.password):
            limiter.failed(*keys)
            _LOG.warning("failed login for user %r from %s", body.username, client)
            raise HTTPException(401, "wrong user name or password")
        limiter.succeeded(*keys)
        token, csrf = new_token(), new_token()
        store.create_session(
            user["id"], token_hash(token), csrf, lifetime=timedelta(hours=cfg.session_hours)
        )
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(cfg.session_hours * 3600),
            httponly=True,
            secure=cfg.secure_cookies,
            samesite="strict",
            path="/",
        )
        _LOG.info("login: user %r (%s)", user["username"], user["role"])
        return {"csrf_token": csrf, "username": user["username"], "role": user["role"]}

    @app.post("/api/logout")
    def logout(
        request: Request, response: Response, user: Annotated[dict, Depends(writer)]
    ) -> dict:
        key = token_hash(request.cookies[COOKIE])
        store.delete_session(key)
        sessions.pop(key, None)
        response.delete_cookie(COOKIE, path="/", secure=cfg.secure_cookies, httponly=True)
        return {"ok": True}

    @app.get("/api/me")
    def me(user: Annotated[dict, Depends(api_user)]) -> dict:
        return {"username": user["username"], "role": user["role"], "csrf_token": user["csrf"]}

    # --- API: labelling ---------------------------------------------------------------------

    # The last subjects "next" offered each person (this process): they may still load one that
    # others' answers retired between their "next" and its image.
    offered: dict[int, deque[int]] = {}

    @app.get("/api/subjects/next", response_model=None)
    def next_subject(user: Annotated[dict, Depends(api_user)]) -> Response:
        row = store.next_subject(user["id"], gold_rate=cfg.gold_rate, top_k=cfg.top_k, rng=rng)
        if row is None:
            return Response(status_code=204)
        if len(offered) > 10_000:
            offered.clear()
        offered.setdefault(user["id"], deque(maxlen=_OFFERED)).append(int(row["id"]))
        return JSONResponse(_subject_json(row))  # a plain dict: no response-model pass

    def viewable(subject_id: int, user: dict) -> dict:
        row = store.subject(subject_id)
        if row is None:
            raise HTTPException(404, f"no subject {subject_id}")
        if (
            user["role"] != "admin"
            and subject_id not in offered.get(user["id"], ())
            and not store.visible(user["id"], subject_id)
        ):
            raise HTTPException(403, "this subject is neither in your queue nor your history")
        return row

    @app.get("/api/subjects/{subject_id}")
    def get_subject(subject_id: int, user: Annotated[dict, Depends(api_user)]) -> dict:
        return _subject_json(viewable(subject_id, user))

    @app.get("/api/subjects/{subject_id}/image.png")
    def subject_image(
        subject_id: int,
        user: Annotated[dict, Depends(api_user)],
        scale: Annotated[int, Query(ge=1, le=MAX_SCALE)] = 4,
    ) -> Response:
        row = viewable(subject_id, user)
        return Response(
            source.png(int(row["dia_source_id"]), scale),
            media_type="image/png",
            headers={"Cache-Control": "private, max-age=3600"},
        )

    @app.post("/api/classifications", status_code=201, response_model=None)
    def classify(body: ClassificationBody, user: Annotated[dict, Depends(writer)]) -> Response:
        try:
            done = store.classify(user["id"], body.subject_id, 1 if body.answer == "real" else 0)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None
        except InputError as exc:
            raise HTTPException(409, str(exc)) from None
        service.live.poke()
        feedback = None
        if done["gold"] is not None:
            gold = "real" if done["gold"] == 1 else "bogus"
            feedback = {"gold": gold, "correct": gold == body.answer}
        body_json = {
            "classification_id": done["classification_id"],
            "subject_id": body.subject_id,
            "answer": body.answer,
            "feedback": feedback,
        }
        return JSONResponse(body_json, status_code=201)

    @app.post("/api/undo")
    def undo(user: Annotated[dict, Depends(writer)]) -> dict:
        removed = store.undo(user["id"])
        if removed is None:
            raise HTTPException(404, "nothing to undo")
        service.live.poke()
        return {"undone": removed}

    @app.get("/api/history")
    def history(
        user: Annotated[dict, Depends(api_user)],
        username: Annotated[str | None, Query(alias="user", max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> dict:
        who = user
        if username is not None and username != user["username"]:
            if user["role"] != "admin":
                raise HTTPException(403, "you may only see your own history")
            who = store.user_by_name(username)
            if who is None:
                raise HTTPException(404, f"no user {username!r}")
        return {
            "username": who["username"],
            "classifications": store.history(who["id"], limit=limit),
        }

    # --- API: admin -------------------------------------------------------------------------

    @app.get("/api/export")
    def export(user: Annotated[dict, Depends(admin)]) -> Response:
        return Response(
            export_csv(store),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="classifications.csv"'},
        )

    @app.get("/api/admin/stats")
    def stats(user: Annotated[dict, Depends(admin)]) -> dict:
        vol = service.live.volunteers
        return {
            "counts": store.counts(),
            "strategy": cfg.strategy,
            "volunteers": json.loads(vol.to_json(orient="records")) if len(vol) else [],
        }

    @app.get("/api/admin/users")
    def list_users(user: Annotated[dict, Depends(admin)]) -> dict:
        return {"users": store.list_users(), "roles": list(ROLES)}

    @app.get("/api/admin/subjects")
    def list_subjects(
        user: Annotated[dict, Depends(admin)],
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict:
        frame = store.subjects_frame().iloc[offset : offset + limit]
        cols = ["id", "dia_source_id", "origin", "gold", "priority", "p_real"]
        cols += ["n_classifications", "retired", "retirement_reason", "model_uncertainty"]
        return {"subjects": json.loads(frame[cols].to_json(orient="records"))}

    @app.post("/api/admin/gold")
    def set_gold(body: GoldBody, user: Annotated[dict, Depends(admin_writer)]) -> dict:
        try:
            n = store.set_gold({g.subject_id: g.label for g in body.labels})
        except InputError as exc:
            raise HTTPException(422, str(exc)) from None
        service.live.poke()
        return {"updated": n}

    @app.post("/api/admin/alerts", response_model=None)
    async def upload_alerts(
        request: Request, user: Annotated[dict, Depends(admin_writer)]
    ) -> Response:
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if kind not in ("application/avro", "application/octet-stream"):
            raise HTTPException(415, "send one Avro alert file's bytes as application/avro")
        payload = await request.body()  # bounded by the body limit
        try:
            added = await run_in_threadpool(service.add_alerts, payload)
        except UploadsOff as exc:
            raise HTTPException(409, str(exc)) from None
        except InputError as exc:
            raise HTTPException(422, str(exc)) from None
        _LOG.info("%s uploaded alerts: %s", user["username"], added)
        return JSONResponse(added, status_code=201 if added["added"] else 200)

    app.add_middleware(_BodyLimit, limit=cfg.max_body_bytes)
    return app
