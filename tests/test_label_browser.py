"""The labelling pages in a real browser: Playwright driving Debian's Chromium (loopback only).

Log in, label 20 subjects by keyboard, undo one, log out. Skips cleanly when Chromium or the
playwright package is absent. With REALBOGUS_LABEL_SCREENSHOT=PATH it also saves the labelling
page there (docs/labelling.png is made that way).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _label_helpers import PASSWORDS

from realbogus.io.dataset import write_dataset
from realbogus.label.app import create_app
from realbogus.label.auth import hash_password
from realbogus.label.service import ServiceConfig, prepare_service
from realbogus.stamps import Stamps

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _triplets(n: int, size: int, rng: np.random.Generator) -> tuple[pd.DataFrame, Stamps]:
    """Noise plus a point source (even rows: real, in science and difference) or a dipole
    (odd rows: a subtraction residual, bogus)."""
    yy, xx = np.mgrid[:size, :size] - size // 2
    psf = np.exp(-(xx**2 + yy**2) / (2 * 1.8**2))
    data = rng.normal(0, 5, (n, 3, size, size)).astype(np.float32)
    host = 40 * np.exp(-((xx - 3) ** 2 + (yy + 2) ** 2) / (2 * 4.0**2))
    data[:, 1] += host
    data[:, 2] += host
    for i in range(n):
        if i % 2 == 0:
            data[i, 0] += 120 * psf
            data[i, 1] += 120 * psf
        else:
            data[i, 0] += 100 * (np.roll(psf, 2, axis=1) - np.roll(psf, -2, axis=1))
    table = pd.DataFrame(
        {
            "diaSourceId": 31000 + np.arange(n, dtype=np.int64),
            "label": (np.arange(n) % 2 == 0).astype(np.int64),
            "origin": "ztf",
            "snr": rng.uniform(5, 40, n),
            "ra": rng.uniform(0, 360, n),
            "dec": rng.uniform(-30, 60, n),
        }
    )
    stamps = Stamps(data=data, valid_fraction=np.ones(n, np.float32), edge=np.zeros(n, bool))
    return table, stamps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, rng):
    """A uvicorn server on 127.0.0.1 in a thread, over 30 subjects; yields (url, service)."""
    uvicorn = pytest.importorskip("uvicorn")
    table, stamps = _triplets(30, 41, rng)
    data = write_dataset(tmp_path / "ds", table, stamps)
    service = prepare_service(
        data,
        str(tmp_path / "label.db"),
        config=ServiceConfig(gold_rate=0.0, secure_cookies=False),
        uploads=tmp_path / "uploads",
    )
    service.store.add_user("vic", hash_password(PASSWORDS["vic"]), "volunteer")
    service.store.add_user("ada", hash_password(PASSWORDS["ada"]), "admin")
    port = _free_port()
    config = uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started
    yield f"http://127.0.0.1:{port}", service
    srv.should_exit = True
    thread.join(timeout=10)
    service.close()


def _browser(p):
    return p.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
    )


def _sync_api():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    return pytest.importorskip("playwright.sync_api")


def test_admin_uploads_alerts_on_the_admin_page(server, shared_data):
    """An admin picks two real alert files (ZTF, Rubin) on the admin page; each becomes a
    subject and the page says so."""
    sync_api = _sync_api()
    url, service = server
    files = [
        sorted((shared_data / "ztf" / "alerts").glob("*.avro"))[0],
        sorted((shared_data / "rubin" / "alerts").glob("*.msg"))[0],
    ]
    n = len(service.store.subjects_frame())
    with sync_api.sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page()
        page.goto(url + "/login")
        page.fill("#username", "ada")
        page.fill("#password", PASSWORDS["ada"])
        page.click("#login-button")
        page.wait_for_url(url + "/")
        page.goto(url + "/admin")
        page.set_input_files("#alerts-file", [str(f) for f in files])
        page.click("#alerts-send")
        page.wait_for_selector("#alerts-result:not(:empty)")  # written once both are sent
        text = page.text_content("#alerts-result")
        browser.close()
    assert text.count(": 1 added, 0 already subjects, 0 unreadable") == 2, text
    assert len(service.store.subjects_frame()) == n + 2


def test_label_20_by_keyboard(server):
    """Log in, label 20 subjects with R/B/arrow keys, undo one with U, log out."""
    sync_api = _sync_api()
    url, service = server
    with sync_api.sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1100, "height": 820})
        page.goto(url + "/")
        assert page.url.endswith("/login")
        page.fill("#username", "vic")
        page.fill("#password", PASSWORDS["vic"])
        page.click("#login-button")
        page.wait_for_selector("body[data-state=ready]")
        keys = ["r", "b", "ArrowLeft", "ArrowRight", "R"] * 4
        for key in keys:
            page.keyboard.press(key)
            page.wait_for_selector("body[data-state=ready]")
        assert page.text_content("#count") == "20"
        uid = service.store.user_by_name("vic")["id"]
        history = service.store.history(uid, limit=100)
        assert len(history) == 20
        expected = ["real" if k.lower() in ("r", "arrowleft") else "bogus" for k in keys]
        assert [h["answer"] for h in reversed(history)] == expected
        page.keyboard.press("u")
        page.wait_for_selector("#count:text-is('19')")
        page.wait_for_selector("body[data-state=ready]")
        assert "Undone" in page.text_content("#feedback")
        assert len(service.store.history(uid)) == 19
        # the undone subject is shown again, zoomable
        assert page.text_content("#subject-id") == str(history[0]["subject_id"])
        page.keyboard.press("+")
        page.wait_for_selector("#triplet[src*='scale=5']")
        page.wait_for_load_state("networkidle")
        shot = os.environ.get("REALBOGUS_LABEL_SCREENSHOT")
        if shot:
            page.screenshot(path=shot, full_page=True)
        page.click("#logout")
        page.wait_for_url("**/login")
        assert page.request.get(url + "/api/subjects/next").status == 401
        browser.close()
