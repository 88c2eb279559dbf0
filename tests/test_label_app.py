"""The labelling web app: the JSON API, pages, security (sessions, roles, CSRF, limits), gold
feedback, the Panoptes-format export read by `crowd aggregate`, and the CLI."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from _label_helpers import PASSWORDS, login, make_service, tiny_dataset
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from realbogus.cli import app as cli_app
from realbogus.crowd.aggregate import aggregate_export
from realbogus.crowd.panoptes import read_classifications
from realbogus.label.app import create_app
from realbogus.label.store import open_store

ADMIN_PATHS = (
    "/admin",
    "/api/export",
    "/api/admin/stats",
    "/api/admin/users",
    "/api/admin/subjects",
)


@pytest.fixture
def service(tmp_path):
    """A service over 30 tiny subjects, 20 % of the labelled ones gold; closed afterwards."""
    svc = make_service(tmp_path, gold_fraction=0.2)
    yield svc
    svc.close()


@pytest.fixture
def app(service):
    """The FastAPI app of `service`."""
    return create_app(service)


def _routes(app) -> list[tuple[str, str]]:
    out = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            path = route.path.replace("{subject_id}", "1")
            out += [(m, path) for m in sorted(route.methods)]
    return out


def test_label_flow(app):
    """Log in, get a subject with images and metadata, answer, undo, log out."""
    c = TestClient(app)
    token = login(c, "vic")
    nxt = c.get("/api/subjects/next")
    assert nxt.status_code == 200
    body = nxt.json()
    assert set(body) == {"subject_id", "images", "metadata"}
    assert body["images"]["panels"] == ["template", "science", "difference"]
    assert "label" not in body["metadata"] and body["metadata"]["diaSourceId"] >= 7000
    img = c.get(body["images"]["triplet"], params={"scale": 2})
    assert img.status_code == 200 and img.content[:8] == b"\x89PNG\r\n\x1a\n"
    w = {"X-CSRF-Token": token}
    r = c.post(
        "/api/classifications",
        json={"subject_id": body["subject_id"], "answer": "bogus"},
        headers=w,
    )
    assert r.status_code == 201 and r.json()["answer"] == "bogus"
    again = c.post(
        "/api/classifications", json={"subject_id": body["subject_id"], "answer": "real"}, headers=w
    )
    assert again.status_code == 409
    assert c.get("/api/history").json()["classifications"][0]["subject_id"] == body["subject_id"]
    undone = c.post("/api/undo", headers=w).json()["undone"]
    assert undone["subject_id"] == body["subject_id"] and undone["answer"] == "bogus"
    assert c.post("/api/undo", headers=w).status_code == 404
    assert c.post("/api/logout", headers=w).status_code == 200
    assert c.get("/api/subjects/next").status_code == 401


def test_queue_empties_with_204(tmp_path):
    """A person who has seen every subject gets 204; gold subjects give feedback."""
    svc = make_service(tmp_path, n=6, gold_fraction=0.5, gold_rate=1.0)
    try:
        c = TestClient(create_app(svc))
        w = {"X-CSRF-Token": login(c, "val")}
        feedback = []
        for _ in range(6):
            sid = c.get("/api/subjects/next").json()["subject_id"]
            out = c.post(
                "/api/classifications", json={"subject_id": sid, "answer": "real"}, headers=w
            )
            feedback.append(out.json()["feedback"])
        assert c.get("/api/subjects/next").status_code == 204
        gold = svc.store.subjects_frame().set_index("id")["gold"]
        n_gold = int(gold.notna().sum())
        assert n_gold >= 1 and sum(f is not None for f in feedback) == n_gold
        for f in feedback:
            if f is not None:
                assert f["correct"] is (f["gold"] == "real")
    finally:
        svc.close()


def test_retired_subjects_of_others_hidden(app, service):
    """A volunteer cannot look at a retired subject they did not classify; its labellers and
    admins can."""
    store = service.store
    sid = int(store.subjects_frame().query("gold.isna()")["id"].iloc[0])
    for name in ("val", "ada"):
        store.classify(store.user_by_name(name)["id"], sid, 1)
    assert store.subject(sid)["retired"]
    c = TestClient(app)
    login(c, "vic")
    assert c.get(f"/api/subjects/{sid}").status_code == 403
    assert c.get(f"/api/subjects/{sid}/image.png").status_code == 403
    assert c.get("/api/subjects/999999").status_code == 404
    for name in ("val", "ada"):
        other = TestClient(app)
        login(other, name)
        assert other.get(f"/api/subjects/{sid}").json()["subject_id"] == sid


def test_offered_subject_viewable_after_retirement(app, service):
    """A subject "next" offered stays viewable to that person when others' answers retire it
    before its image loads (a race of concurrent labellers); to others it is hidden."""
    store = service.store
    c = TestClient(app)
    w = {"X-CSRF-Token": login(c, "vic")}
    sid = c.get("/api/subjects/next").json()["subject_id"]
    for name in ("val", "ada"):
        store.classify(store.user_by_name(name)["id"], sid, 1)
    assert store.subject(sid)["retired"]
    assert c.get(f"/api/subjects/{sid}/image.png").status_code == 200
    assert c.get(f"/api/subjects/{sid}").status_code == 200
    r = c.post("/api/classifications", json={"subject_id": sid, "answer": "real"}, headers=w)
    assert r.status_code == 201
    store.add_user("newbie", store.user_by_name("vic")["password_hash"], "volunteer")
    other = TestClient(app)
    r = other.post("/api/login", json={"username": "newbie", "password": PASSWORDS["vic"]})
    assert r.status_code == 200
    assert other.get(f"/api/subjects/{sid}/image.png").status_code == 403


def test_every_route_refuses_anonymous(app):
    """Every page redirects to /login and every API route answers 401 without a session."""
    c = TestClient(app, follow_redirects=False)
    routes = _routes(app)
    assert len(routes) >= 15
    for method, path in routes:
        if path in ("/login", "/api/login"):
            continue
        r = c.request(method, path, json={})
        if path.startswith("/api/"):
            assert r.status_code == 401, (method, path, r.status_code)
        else:
            assert r.status_code == 303 and r.headers["location"] == "/login", (method, path)


def test_volunteer_cannot_reach_admin_or_others(app):
    """A volunteer gets 403 on admin pages and routes and on another person's history."""
    c = TestClient(app)
    token = login(c, "vic")
    for path in ADMIN_PATHS:
        assert c.get(path).status_code == 403, path
    r = c.post("/api/admin/gold", json={"labels": []}, headers={"X-CSRF-Token": token})
    assert r.status_code == 403
    assert c.get("/api/history", params={"user": "val"}).status_code == 403
    assert c.get("/api/history", params={"user": "vic"}).status_code == 200
    admin = TestClient(app)
    login(admin, "ada")
    for path in ADMIN_PATHS:
        assert admin.get(path).status_code == 200, path
    assert admin.get("/api/history", params={"user": "vic"}).json()["username"] == "vic"


def test_writes_need_csrf_token(app):
    """Every POST route refuses a signed-in request without (or with a wrong) X-CSRF-Token."""
    c = TestClient(app)
    token = login(c, "ada")
    posts = [p for m, p in _routes(app) if m == "POST" and p != "/api/login"]
    assert set(posts) >= {"/api/logout", "/api/classifications", "/api/undo", "/api/admin/gold"}
    for path in posts:
        for headers in ({}, {"X-CSRF-Token": "x" + token}):
            r = c.post(
                path, json={"subject_id": 1, "answer": "real", "labels": []}, headers=headers
            )
            assert r.status_code == 403, (path, headers, r.status_code)
    assert c.get("/api/me").status_code == 200  # still signed in: nothing was done


def test_login_checks(app):
    """Login needs JSON from the same origin; failures are rate limited per name."""
    c = TestClient(app)
    form = c.post("/api/login", data={"username": "vic", "password": PASSWORDS["vic"]})
    assert form.status_code in (415, 422)
    cross = c.post(
        "/api/login",
        json={"username": "vic", "password": PASSWORDS["vic"]},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    for _ in range(5):
        assert (
            c.post("/api/login", json={"username": "vic", "password": "wrong-pass"}).status_code
            == 401
        )
    blocked = c.post("/api/login", json={"username": "vic", "password": PASSWORDS["vic"]})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
    assert c.post("/api/login", json={"username": "nobody", "password": "x"}).status_code in (
        401,
        429,
    )


def test_cookie_and_headers(tmp_path):
    """The session cookie is HttpOnly, SameSite=Strict and Secure when configured; pages carry
    a same-origin CSP."""
    svc = make_service(tmp_path, config={})
    try:
        svc.config = svc.config.__class__(secure_cookies=True, gold_rate=0.0)
        c = TestClient(create_app(svc), base_url="https://testserver")
        r = c.post("/api/login", json={"username": "vic", "password": PASSWORDS["vic"]})
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie
        page = c.get("/")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        assert "cdn" not in page.text.lower() and "https://" not in page.text
    finally:
        svc.close()


def test_traversal_and_oversized(app):
    """Static files and image routes refuse paths outside the package; bodies over the limit
    (declared or streamed) get 413."""
    c = TestClient(app)
    token = login(c, "vic")
    for path in (
        "/static/%2e%2e/store.py",
        "/static/..%2fstore.py",
        "/static/%2e%2e/%2e%2e/label/auth.py",
        "/api/subjects/..%2f..%2fetc%2fpasswd/image.png",
        "/api/subjects/1%2f..%2f..%2fstore.py",
    ):
        r = c.get(path)
        assert r.status_code in (404, 422), (path, r.status_code)
        assert b"import" not in r.content and b"root:" not in r.content
    assert c.get("/static/app.js").status_code == 200
    big = b'{"subject_id": 1, "answer": "real", "pad": "' + b"x" * (2 << 20) + b'"}'
    w = {"X-CSRF-Token": token, "Content-Type": "application/json"}
    assert c.post("/api/classifications", content=big, headers=w).status_code == 413

    def stream():
        for _ in range(40):
            yield b"x" * 65536

    assert c.post("/api/classifications", content=stream(), headers=w).status_code == 413
    assert c.get("/api/subjects/1/image.png", params={"scale": 1000}).status_code == 422


def test_passwords_never_in_clear(tmp_path, caplog):
    """The database holds argon2id hashes only; neither logs nor CLI output show a password."""
    secret = "Sup3r-secret-pass"
    db = tmp_path / "label.db"
    runner = CliRunner()
    out = runner.invoke(
        cli_app,
        ["label", "users", "add", "eve", "--role", "expert", "--db", str(db)],
        input=secret + "\n",
    )
    assert out.exit_code == 0, out.output
    assert secret not in out.output
    short = runner.invoke(
        cli_app, ["label", "users", "add", "eve2", "--db", str(db)], input="short\n"
    )
    assert short.exit_code == 1 and "at least 8" in short.output
    svc = make_service(tmp_path, db=str(db))
    try:
        caplog.set_level(logging.DEBUG)
        c = TestClient(create_app(svc))
        assert c.post("/api/login", json={"username": "eve", "password": secret}).status_code == 200
        assert (
            c.post("/api/login", json={"username": "eve", "password": secret + "x"}).status_code
            == 401
        )
        assert secret not in caplog.text
        assert "eve" in caplog.text  # the login was logged, by name
        row = svc.store.user_by_name("eve")
        assert row["role"] == "expert" and row["password_hash"].startswith("$argon2id$")
    finally:
        svc.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("label.db*"))
    assert secret.encode() not in raw and b"$argon2id$" in raw


def test_export_read_by_crowd_aggregate(tmp_path):
    """Three people label every subject; the export parses with crowd's Panoptes reader, keeps
    every classification, takes the gold set from the feedback metadata and aggregates."""
    svc = make_service(tmp_path, gold_fraction=0.3, gold_rate=0.3, config={"top_k": 30})
    try:
        app = create_app(svc)
        rng = np.random.default_rng(1)
        for name in ("vic", "val", "ada"):
            c = TestClient(app)
            w = {"X-CSRF-Token": login(c, name)}
            while (r := c.get("/api/subjects/next")).status_code == 200:
                sid = r.json()["subject_id"]
                answer = "real" if rng.random() < 0.5 else "bogus"
                assert (
                    c.post(
                        "/api/classifications",
                        json={"subject_id": sid, "answer": answer},
                        headers=w,
                    ).status_code
                    == 201
                )
        admin = TestClient(app)
        login(admin, "ada")
        text = admin.get("/api/export").text
        n_db = svc.store.counts()["classifications"]
        subj = svc.store.subjects_frame()
    finally:
        svc.close()
    path = tmp_path / "export.csv"
    path.write_text(text)
    parsed = read_classifications(path)
    assert len(parsed.votes) == n_db > 0
    assert sum(parsed.dropped.values()) == 0
    gold = subj.dropna(subset=["gold"]).set_index("id")["gold"].astype(int)
    # The export holds classified subjects only: a gold subject nobody was served (the queue's
    # gold draw is random, and "next" ends when the regular queue is empty) is not in it.
    gold = gold[gold.index.isin(parsed.votes["subject_id"])]
    assert len(gold) > 0
    assert parsed.gold.sort_index().to_dict() == gold.sort_index().to_dict()
    retired = parsed.subjects.set_index("subject_id")["retired"]
    assert retired.to_dict() == subj.set_index("id")["retired"].reindex(retired.index).to_dict()
    labels, dropped = aggregate_export(str(path), method="swap")
    assert len(labels.subjects) == len(parsed.votes["subject_id"].unique())
    assert set(labels.subjects["diaSourceId"]) <= set(range(7000, 7030))
    # the CLI writes the same file, and `crowd aggregate` reads it unchanged
    runner = CliRunner()
    cli_out = tmp_path / "cli.csv"
    r = runner.invoke(
        cli_app, ["label", "export", "--db", str(tmp_path / "label.db"), "--out", str(cli_out)]
    )
    assert r.exit_code == 0, r.output
    assert cli_out.read_text() == text
    r = runner.invoke(
        cli_app, ["crowd", "aggregate", str(cli_out), "--out", str(tmp_path / "labels.parquet")]
    )
    assert r.exit_code == 0, r.output


def test_live_swap_updates(service):
    """After classifications the live SWAP refresh moves Pr(Real) and volunteer skills."""
    store = service.store
    gold_ids = store.subjects_frame().dropna(subset=["gold"])
    c = TestClient(create_app(service))
    w = {"X-CSRF-Token": login(c, "vic")}
    for sid, g in zip(gold_ids["id"], gold_ids["gold"], strict=True):
        answer = "real" if g == 1 else "bogus"
        c.post("/api/classifications", json={"subject_id": int(sid), "answer": answer}, headers=w)
    plain = store.subjects_frame()
    target = int(plain[plain["gold"].isna()]["id"].iloc[0])
    c.post("/api/classifications", json={"subject_id": target, "answer": "real"}, headers=w)
    service.live.refresh()
    assert store.subject(target)["p_real"] > 0.5
    vol = service.live.volunteers
    assert vol.loc[vol["username"] == "vic", "n_reference"].item() == len(gold_ids)


def test_serve_refuses_foreign_db(tmp_path):
    """Serving a database with other DATA than it was made from is refused, naming --db."""
    from realbogus.errors import InputError
    from realbogus.label.service import prepare_service

    make_service(tmp_path).close()
    other = tiny_dataset(tmp_path / "other", n=4, first_id=9100)
    with pytest.raises(InputError, match="--db holds 30 subjects"):
        prepare_service(other, str(tmp_path / "label.db"))


def test_store_reopens(tmp_path):
    """A second serve over the same DATA and database keeps users, subjects and answers."""
    svc = make_service(tmp_path)
    c = TestClient(create_app(svc))
    w = {"X-CSRF-Token": login(c, "vic")}
    sid = c.get("/api/subjects/next").json()["subject_id"]
    c.post("/api/classifications", json={"subject_id": sid, "answer": "real"}, headers=w)
    svc.close()
    store = open_store(str(tmp_path / "label.db"))
    assert store.counts()["classifications"] == 1 and store.counts()["users"] == 3
    store.close()


def test_restart_without_gold(tmp_path):
    """A database with answers but no gold subject serves again after a restart: SWAP cannot
    learn skills without gold, so Pr(Real) stays at the prior instead of failing the start."""
    from realbogus.label.service import prepare_service

    svc = make_service(tmp_path)
    c = TestClient(create_app(svc))
    w = {"X-CSRF-Token": login(c, "vic")}
    sid = c.get("/api/subjects/next").json()["subject_id"]
    assert (
        c.post(
            "/api/classifications", json={"subject_id": sid, "answer": "real"}, headers=w
        ).status_code
        == 201
    )
    svc.close()
    again = prepare_service(tmp_path / "ds", str(tmp_path / "label.db"))
    try:
        assert again.store.counts()["classifications"] == 1
        assert again.store.subject(sid)["p_real"] == 0.5
        assert again.live.refresh().empty
    finally:
        again.close()


def test_csv_export_columns(service):
    """The export header is exactly the 14 Panoptes columns."""
    from realbogus.crowd.panoptes import EXPORT_COLUMNS
    from realbogus.label.export import export_csv

    header = next(io.StringIO(export_csv(service.store))).strip().split(",")
    assert tuple(header) == EXPORT_COLUMNS
