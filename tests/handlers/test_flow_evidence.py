"""Evidence steps of /lapor as a focal point lives them (issue #12, item 8): the
prompts say what is accepted."""

from __future__ import annotations

from tests.support.factories import FOCAL_PHONE, make_world
from tests.support.harness import Harness


async def _at_photo_step(sessions, data_dir) -> Harness:
    """Registered, report opened, at the "Foto kegiatan" requirement (photo or PDF, min 1)."""
    async with sessions() as session:
        world = await make_world(session)
        await session.commit()
    h = Harness(sessions, data_dir)
    await h.text("halo")
    await h.contact(FOCAL_PHONE)
    await h.text("/lapor")
    await h.choose(f"a:{world.action.id}")
    await h.text("25")
    await h.choose("yes")
    reply = await h.choose("skip")
    assert "Foto kegiatan" in reply
    return h


# --- item 8 ---------------------------------------------------------------------------------


async def test_prompts_name_only_the_accepted_kinds(sessions, data_dir) -> None:
    h = await _at_photo_step(sessions, data_dir)
    prompt = h.channel.texts()[-1]
    assert "Kirim foto atau dokumen PDF <b>Foto kegiatan</b>" in prompt
    reply = await h.text("ini fotonya")
    assert "Saya menunggu foto atau dokumen PDF untuk" in reply
    await h.text("/selesai")
    await h.text("25-08-2025")
    reply = await h.text("2")
    assert "Kirim dokumen PDF, Excel atau Word <b>Daftar penerima</b>" in reply
    assert "foto/dokumen" not in "\n".join(h.channel.texts())
