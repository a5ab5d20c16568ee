"""Self-tests for the fake Graph API and the webhook payload builders."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes import whatsapp_payloads as wp
from tests.fakes.graph_api import FakeGraphAPI

TOKEN = "test-token"
PNID = "1234567890"
SITI = "6281234567890"
BUDI = "6281398765432"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "whatsapp"
FIXTURE_NAMES = [
    "text.json",
    "button_reply.json",
    "list_reply.json",
    "image.json",
    "document_pdf.json",
    "contacts.json",
    "location.json",
    "sticker.json",
    "audio.json",
    "reaction.json",
    "status_sent.json",
    "status_delivered.json",
    "status_read.json",
    "status_failed_131047.json",
]


@pytest.fixture
async def api() -> AsyncIterator[FakeGraphAPI]:
    async with FakeGraphAPI(token=TOKEN, phone_number_id=PNID) as fake:
        yield fake


@pytest.fixture
async def client(api: FakeGraphAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=5.0) as http:
        yield http


def text(to: str, body: str = "Halo") -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}}


def buttons(to: str, titles: list[str]) -> dict[str, Any]:
    replies = [
        {"type": "reply", "reply": {"id": f"b{i}", "title": t}} for i, t in enumerate(titles)
    ]
    interactive = {
        "type": "button",
        "body": {"text": "Pilih jenis laporan"},
        "action": {"buttons": replies},
    }
    return {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "interactive",
        "interactive": interactive,
    }


def list_message(to: str, rows: list[dict[str, str]]) -> dict[str, Any]:
    interactive = {
        "type": "list",
        "body": {"text": "Pilih kriteria KKPHAM"},
        "action": {"button": "Kriteria", "sections": [{"title": "Kriteria", "rows": rows}]},
    }
    return {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "interactive",
        "interactive": interactive,
    }


def template(to: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "template",
        "template": {
            "name": "pengingat_laporan",
            "language": {"code": "id"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Sleman"}]}],
        },
    }


async def test_every_route_requires_the_bearer_token(api: FakeGraphAPI) -> None:
    api.add_media("555", b"x", "image/jpeg")
    async with httpx.AsyncClient(base_url=api.url) as anon:
        missing = await anon.post(f"/{PNID}/messages", json=text(SITI))
        wrong = await anon.get("/555", headers={"Authorization": "Bearer nope"})
    for response in (missing, wrong):
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == 190
        assert error["type"] == "OAuthException"
        assert error["message"] and error["fbtrace_id"]
    assert [r.failed for r in api.requests] == [True, True]
    assert api.sent_messages() == []


async def test_sends_are_answered_and_recorded(
    api: FakeGraphAPI, client: httpx.AsyncClient
) -> None:
    rows = [{"id": "k1", "title": "Kriteria 1", "description": "Hak atas kesehatan"}]
    bodies = [text(SITI), buttons(SITI, ["Ya", "Tidak"]), list_message(SITI, rows), template(BUDI)]
    answers = [(await client.post(f"/{PNID}/messages", json=b)).json() for b in bodies]

    assert answers[0]["messaging_product"] == "whatsapp"
    assert answers[0]["contacts"] == [{"input": SITI, "wa_id": SITI}]
    ids = [a["messages"][0]["id"] for a in answers]
    assert all(i.startswith("wamid.HBgN") for i in ids) and len(set(ids)) == 4
    assert answers[3]["messages"][0]["message_status"] == "accepted"
    assert [m["type"] for m in api.sent_messages(SITI)] == ["text", "interactive", "interactive"]
    assert api.sent_messages(BUDI) == [bodies[3]]

    receipt = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.ABC"}
    response = await client.post(f"/{PNID}/messages", json=receipt)
    assert response.json() == {"success": True}
    assert api.read_receipts() == ["wamid.ABC"]
    assert len(api.sent_messages()) == 4  # the receipt is not a sent message
    recorded = api.requests[0]
    assert (recorded.method, recorded.path, recorded.failed) == (
        "POST",
        f"/v21.0/{PNID}/messages",
        False,
    )
    assert recorded.headers["authorization"] == f"Bearer {TOKEN}"


async def test_listener_sees_each_answered_request(
    api: FakeGraphAPI, client: httpx.AsyncClient
) -> None:
    seen: list[tuple[str | None, int]] = []
    remove = api.on_request(lambda r: seen.append(((r.json or {}).get("to"), r.status)))
    await client.post(f"/{PNID}/messages", json=text(SITI))
    await client.post(f"/{PNID}/messages", json=text(BUDI) | {"messaging_product": "sms"})
    remove()
    await client.post(f"/{PNID}/messages", json=text(SITI, "tidak terlihat"))

    assert seen == [(SITI, 200), (BUDI, 400)]
    assert len(api.requests) == 3


async def test_invalid_sends_get_131009(api: FakeGraphAPI, client: httpx.AsyncClient) -> None:
    row = {"id": "r", "title": "Baris"}
    invalid = {
        "button title > 20": buttons(SITI, ["Laporkan Aksi HAM sekarang"]),
        "4 buttons": buttons(SITI, ["a", "b", "c", "d"]),
        "11 rows": list_message(SITI, [{"id": f"r{i}", "title": "t"} for i in range(11)]),
        "row title > 24": list_message(SITI, [row | {"title": "x" * 25}]),
        "row description > 72": list_message(SITI, [row | {"description": "x" * 73}]),
        "text > 4096": text(SITI, "x" * 4097),
        "messaging_product": text(SITI) | {"messaging_product": "sms"},
    }
    for case, body in invalid.items():
        response = await client.post(f"/{PNID}/messages", json=body)
        assert response.status_code == 400, case
        error = response.json()["error"]
        assert error["code"] == 131009, case
        assert error["message"] == "(#131009) Parameter value is not valid"
        assert error["error_data"]["details"], case
    assert "Max length: 20" in api.requests[0].response["error"]["error_data"]["details"]
    assert all(r.failed for r in api.requests) and api.sent_messages() == []
    # Boundary values are accepted.
    ok = await client.post(f"/{PNID}/messages", json=buttons(SITI, ["x" * 20, "y", "z"]))
    assert ok.status_code == 200


async def test_media_url_download_and_expiry(api: FakeGraphAPI, client: httpx.AsyncClient) -> None:
    data = b"\xff\xd8\xffjpeg-bytes"
    api.add_media("1122334455", data, "image/jpeg")
    meta = (await client.get("/1122334455")).json()
    assert meta["messaging_product"] == "whatsapp"
    assert meta["id"] == "1122334455" and meta["mime_type"] == "image/jpeg"
    assert meta["sha256"] == hashlib.sha256(data).hexdigest() and meta["file_size"] == len(data)
    assert meta["url"].startswith(f"{api.origin}/_media/") and "expires=" in meta["url"]

    async with httpx.AsyncClient() as raw:
        download = await raw.get(meta["url"], headers=AUTH)
        anonymous = await raw.get(meta["url"])
        api.media_url_ttl = 0  # everything already issued is now past its lifetime
        expired = await raw.get(meta["url"], headers=AUTH)
    assert download.status_code == 200 and download.content == data
    assert download.headers["content-type"] == "image/jpeg"
    assert anonymous.status_code == 401
    assert expired.status_code == 404

    unknown = await client.get("/999")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == 100


async def test_upload_then_fetch(api: FakeGraphAPI, client: httpx.AsyncClient) -> None:
    pdf = b"%PDF-1.7\r\n--not-a-boundary\r\n\x00\x01"
    response = await client.post(
        f"/{PNID}/media",
        data={"messaging_product": "whatsapp", "type": "application/pdf"},
        files={"file": ("laporan.pdf", pdf, "application/pdf")},
    )
    media_id = response.json()["id"]
    meta = (await client.get(f"/{media_id}")).json()
    download = await client.get(meta["url"])
    assert download.content == pdf and meta["mime_type"] == "application/pdf"
    assert api.media[media_id].filename == "laporan.pdf"


async def test_fail_next_uses_the_graph_envelope(
    api: FakeGraphAPI, client: httpx.AsyncClient
) -> None:
    api.fail_next(131047)
    failed = await client.post(f"/{PNID}/messages", json=text(SITI))
    assert failed.status_code == 400
    error = failed.json()["error"]
    assert set(error) == {"message", "type", "code", "error_data", "fbtrace_id"}
    assert error["message"] == "(#131047) Re-engagement message"
    assert error["type"] == "OAuthException" and error["code"] == 131047
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert "24 hours" in error["error_data"]["details"]
    assert (await client.post(f"/{PNID}/messages", json=text(SITI))).status_code == 200

    api.fail_next(130429, count=2, to=BUDI)
    api.fail_next(500)
    other = await client.post(f"/{PNID}/messages", json=text(SITI))
    assert other.status_code == 500 and other.json()["error"]["code"] == 131000
    for _ in range(2):
        throttled = await client.post(f"/{PNID}/messages", json=text(BUDI))
        assert throttled.status_code == 429 and throttled.json()["error"]["code"] == 130429
    assert (await client.post(f"/{PNID}/messages", json=text(BUDI))).status_code == 200
    assert len(api.sent_messages()) == 2


async def test_outside_window_only_allows_templates(
    api: FakeGraphAPI, client: httpx.AsyncClient
) -> None:
    api.outside_window(SITI)
    blocked = await client.post(f"/{PNID}/messages", json=buttons(SITI, ["Ya"]))
    assert blocked.status_code == 400 and blocked.json()["error"]["code"] == 131047
    assert (await client.post(f"/{PNID}/messages", json=template(SITI))).status_code == 200
    assert (await client.post(f"/{PNID}/messages", json=text(BUDI))).status_code == 200
    api.inside_window(SITI)
    assert (await client.post(f"/{PNID}/messages", json=text(SITI))).status_code == 200
    assert [m["type"] for m in api.sent_messages(SITI)] == ["template", "text"]


async def test_wait_for_and_delay(api: FakeGraphAPI, client: httpx.AsyncClient) -> None:
    waiter = asyncio.create_task(
        api.wait_for(lambda r: r.json is not None and r.json["to"] == BUDI)
    )
    api.delay_next(0.05)
    started = asyncio.get_running_loop().time()
    await client.post(f"/{PNID}/messages", json=text(BUDI))
    assert asyncio.get_running_loop().time() - started >= 0.05
    found = await waiter
    assert found.json == text(BUDI)
    assert await api.wait_for_sent(1, to=BUDI) == [text(BUDI)]
    with pytest.raises(TimeoutError):
        await api.wait_for(lambda r: r.method == "DELETE", timeout=0.01)


async def test_unknown_phone_number_id(client: httpx.AsyncClient) -> None:
    response = await client.post("/999/messages", json=text(SITI))
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "GraphMethodException"


def test_sign_matches_hmac_sha256() -> None:
    payload = wp.text_message(SITI, "Laporan sudah dikirim 👍")
    body = wp.encode(payload)
    expected = hmac.new(b"app-secret", body, hashlib.sha256).hexdigest()
    assert wp.sign(body, "app-secret") == f"sha256={expected}"
    assert wp.signed_headers(body, "app-secret")["X-Hub-Signature-256"] == f"sha256={expected}"
    assert b'": ' not in body and b'", ' not in body  # compact separators
    assert b"\\ud83d\\udc4d" in body  # non-ASCII escaped, as in Meta's bodies
    assert json.loads(body) == payload


def test_builders_follow_the_notification_shape() -> None:
    status = wp.status_update("wamid.X", "failed", SITI, errors=[131047])
    value = status["entry"][0]["changes"][0]["value"]
    assert value["statuses"][0]["errors"][0]["code"] == 131047
    assert value["statuses"][0]["errors"][0]["error_data"]["details"]
    reply = wp.button_reply(SITI, "lapor", "Lapor", context_wamid="wamid.CTX")
    message = reply["entry"][0]["changes"][0]["value"]["messages"][0]
    assert message["interactive"]["button_reply"] == {"id": "lapor", "title": "Lapor"}
    assert message["context"]["id"] == "wamid.CTX" and message["id"].startswith("wamid.HBgN")
    reaction = wp.unsupported_message(SITI, "reaction")
    assert reaction["entry"][0]["changes"][0]["value"]["messages"][0]["type"] == "reaction"
    moved = wp.retarget(reply, phone_number_id="42")
    assert moved["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] == "42"


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_is_a_webhook_body(name: str) -> None:
    payload = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    assert payload["object"] == "whatsapp_business_account"
    change = payload["entry"][0]["changes"][0]
    assert change["field"] == "messages"
    assert change["value"]["metadata"]["phone_number_id"] == PNID


async def test_standalone_process() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.graph_api",
        "--port",
        "0",
        "--token",
        "T",
        "--phone-number-id",
        "P",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().strip()
        origin = url.rsplit("/", 1)[0]
        async with httpx.AsyncClient() as http:
            media = {
                "id": "77",
                "data_b64": base64.b64encode(b"hi").decode(),
                "mime_type": "text/plain",
            }
            await http.post(f"{origin}/_fake/media", json=media)
            meta = await http.get(f"{url}/77", headers={"Authorization": "Bearer T"})
            recorded = (await http.get(f"{origin}/_fake/requests")).json()["requests"]
        assert meta.json()["file_size"] == 2
        assert url.endswith("/v21.0")
        assert [r["path"] for r in recorded] == ["/v21.0/77"]
    finally:
        proc.terminate()
        await proc.wait()
