"""Oversight through the real Telegram channel against the fake Bot API: a Kanwil's /status
with its buttons, opening a pemda, and /rekap's chart and workbook arriving as a photo and a
document after "sedang disiapkan" (made by the recap-requests job, outside the turn), and the
evidence ZIP of a pemda chosen by its code (python-telegram-bot on 127.0.0.1, the product
composed as `laporham run` does)."""

from __future__ import annotations

import io
import zipfile

from openpyxl import load_workbook
from PIL import Image

from tests.channels.test_telegram import (  # noqa: F401  (fixtures)
    Person,
    api,
    running,
    settings,
)
from tests.fakes.telegram_api import contact_update
from tests.support.oversight_world import add_report, make_country


async def test_a_kanwil_on_telegram_opens_a_pemda_and_gets_the_recap_files(
    api,  # noqa: F811  (the fixture imported above)
    settings,  # noqa: F811
    sessions,
) -> None:
    async with sessions() as session:
        country = await make_country(session)
        await add_report(session, country, region_code="91.01")
        await session.commit()
    kanwil = country.kanwil["91"]
    person = Person(api, user_id=777001, first_name="Kanwil")
    async with running(settings):
        await person.text("halo", "Bagikan nomor saya")
        update = contact_update(person.user_id, kanwil.phone, contact_user_id=person.user_id)
        await person.push(update, "Kanwil Provinsi Alfa")
        view = await person.command("status", "Status Periode B08")
        assert "Kabupaten Alfasatu</b>: 1/2 terkirim" in view.params["text"]
        buttons = [b["text"] for row in view.params["reply_markup"]["inline_keyboard"] for b in row]
        assert "Kabupaten Alfasatu" in buttons and "Provinsi Beta" not in " ".join(buttons)
        pemda = await person.tap(view, "Kabupaten Alfasatu", "— Kabupaten Alfasatu")
        assert "Dinas Sosial Kabupaten Alfasatu" in pemda.params["text"]
        start = len(api.requests)
        await person.command("rekap", "sedang disiapkan")  # answered at once, in the turn
        # The files follow from the recap-requests job, outside the turn.
        photo = await api.wait_for("sendPhoto", 20, start=start)
        document = await api.wait_for("sendDocument", 20, start=start)
        start = len(api.requests)
        listing = await person.command("rekap", "Pilih satu pemda", args="bukti")
        assert "91.01 Kabupaten Alfasatu" in listing.params["text"]
        await person.command("rekap", "sedang disiapkan", args="bukti 91.01")
        archive = await api.wait_for("sendDocument", 20, start=start)
    chart = Image.open(io.BytesIO(photo.files["photo"]))
    assert chart.format == "PNG" and chart.size[0] >= 1000
    assert "target 80" in photo.params["caption"]
    assert document.result["document"]["file_name"] == "rekap-B08-91.xlsx"
    book = load_workbook(io.BytesIO(document.files["document"]))
    assert "91.01 Kabupaten Alfasatu" in book.sheetnames
    assert not [name for name in book.sheetnames if "Beta" in name]
    assert archive.result["document"]["file_name"] == "bukti-B08-91.01.zip"
    members = zipfile.ZipFile(io.BytesIO(archive.files["document"])).namelist()
    assert "manifest.csv" in members
