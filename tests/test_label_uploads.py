"""Alert packets uploaded by admins while the labelling service runs (`label.uploads`,
``POST /api/admin/alerts``): subjects at once, kept across restarts, refused when they should be."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest
from _label_helpers import login, make_service, tiny_dataset
from fastapi.testclient import TestClient

from realbogus.errors import InputError
from realbogus.label.app import create_app
from realbogus.label.service import prepare_service
from realbogus.label.uploads import decode_upload, uploads_folder

AVRO = {"Content-Type": "application/avro"}


@pytest.fixture
def ztf_packet(shared_data) -> bytes:
    """One real ZTF alert file's bytes."""
    return sorted((shared_data / "ztf" / "alerts").glob("*.avro"))[0].read_bytes()


@pytest.fixture
def rubin_packet(shared_data) -> bytes:
    """One real Rubin alert message (Confluent wire format)."""
    return sorted((shared_data / "rubin" / "alerts").glob("*.msg"))[0].read_bytes()


def _admin(service) -> tuple[TestClient, dict]:
    client = TestClient(create_app(service))
    return client, {**AVRO, "X-CSRF-Token": login(client, "ada")}


def test_upload_becomes_a_subject_and_survives_restart(tmp_path, ztf_packet, rubin_packet):
    """An admin's ZTF and Rubin uploads are subjects at once (listed, rendered, in the queue);
    the packets are kept under their SHA-256 with the umask's permissions; a second upload of
    the same packet adds nothing; a restart with the same --uploads serves them again."""
    up = tmp_path / "up"
    service = make_service(tmp_path, uploads=up)
    try:
        client, headers = _admin(service)
        before = len(client.get("/api/admin/subjects", params={"limit": 1000}).json()["subjects"])
        for packet in (ztf_packet, rubin_packet):
            r = client.post("/api/admin/alerts", content=packet, headers=headers)
            assert r.status_code == 201, r.text
            body = r.json()
            assert (body["added"], body["already"], body["failed"]) == (1, 0, 0)
            assert body["file"] == hashlib.sha256(packet).hexdigest() + ".avro"
            kept = up / body["file"]
            assert kept.read_bytes() == packet
            umask = os.umask(0)
            os.umask(umask)
            assert stat.S_IMODE(kept.stat().st_mode) == 0o666 & ~umask
        again = client.post("/api/admin/alerts", content=ztf_packet, headers=headers)
        assert again.status_code == 200 and again.json()["added"] == 0
        assert again.json()["already"] == 1
        subjects = client.get("/api/admin/subjects", params={"limit": 1000}).json()["subjects"]
        assert len(subjects) == before + 2
        new = subjects[-1]
        png = client.get(f"/api/subjects/{new['id']}/image.png")
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
        assert sorted(p.name for p in up.iterdir()) == sorted(
            hashlib.sha256(p).hexdigest() + ".avro" for p in (ztf_packet, rubin_packet)
        )
    finally:
        service.close()
    db = str(tmp_path / "label.db")
    again = prepare_service(tmp_path / "ds", db, uploads=up)
    try:
        assert len(again.store.subjects_frame()) == before + 2
        assert again.source.stamp(int(new["dia_source_id"])).shape == (3, 15, 15)
    finally:
        again.close()
    with pytest.raises(InputError, match="--uploads"):
        prepare_service(tmp_path / "ds", db)


def test_upload_refusals(tmp_path, ztf_packet):
    """Not Avro -> 422 with the reason; another content type -> 415; over the body limit ->
    413; a volunteer -> 403; no CSRF token -> 403; no --uploads -> 409. Nothing is kept."""
    up = tmp_path / "up"
    service = make_service(tmp_path, uploads=up, config={"max_body_bytes": 100_000})
    try:
        client, headers = _admin(service)
        r = client.post("/api/admin/alerts", content=b"not an alert", headers=headers)
        assert r.status_code == 422 and "neither an Avro container" in r.json()["detail"]
        r = client.post("/api/admin/alerts", content=b"", headers=headers)
        assert r.status_code == 422 and "empty" in r.json()["detail"]
        json_headers = {**headers, "Content-Type": "application/json"}
        assert (
            client.post("/api/admin/alerts", content=ztf_packet, headers=json_headers).status_code
            == 415
        )
        big = ztf_packet + b"\0" * 100_000
        assert client.post("/api/admin/alerts", content=big, headers=headers).status_code == 413
        no_token = {k: v for k, v in headers.items() if k != "X-CSRF-Token"}
        assert (
            client.post("/api/admin/alerts", content=ztf_packet, headers=no_token).status_code
            == 403
        )
        volunteer = TestClient(create_app(service))
        token = login(volunteer, "vic")
        r = volunteer.post(
            "/api/admin/alerts", content=ztf_packet, headers={**AVRO, "X-CSRF-Token": token}
        )
        assert r.status_code == 403
        # a client-side file name never names the kept file
        named = {**headers, "Content-Disposition": 'attachment; filename="../../escape.avro"'}
        assert (
            client.post("/api/admin/alerts", content=ztf_packet, headers=named).status_code == 201
        )
        assert [p.name for p in up.iterdir()] == [hashlib.sha256(ztf_packet).hexdigest() + ".avro"]
        assert not (tmp_path / "escape.avro").exists()
    finally:
        service.close()
    off = make_service(tmp_path / "off")
    try:
        client, headers = _admin(off)
        r = client.post("/api/admin/alerts", content=ztf_packet, headers=headers)
        assert r.status_code == 409 and "--uploads" in r.json()["detail"]
    finally:
        off.close()


def test_uploads_folder_checks(tmp_path):
    """The folder is made if missing, and may not lie inside DATA (read recursively)."""
    data = tiny_dataset(tmp_path / "ds")
    made = uploads_folder(tmp_path / "a" / "b", data)
    assert made.is_dir()
    with pytest.raises(InputError, match="inside DATA"):
        uploads_folder(data / "uploads", data)
    with pytest.raises(InputError, match="inside DATA"):
        uploads_folder(data, data)


def test_decode_upload_needs_one_alert():
    """An upload with no readable record is refused with the reader's reason."""
    with pytest.raises(InputError, match="unknown Rubin alert schema id 7"):
        decode_upload(b"\x00\x00\x00\x00\x07garbage", stamp_size=15)
