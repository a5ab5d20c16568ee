import pytest
from pydantic import ValidationError

from bot.settings import Settings


def test_defaults_match_the_interface() -> None:
    settings = Settings(_env_file=None)
    assert settings.database_url == "sqlite+aiosqlite:///data/laporham.db"
    assert settings.language == "id"
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8080)
    assert not settings.telegram_enabled and not settings.whatsapp_enabled
    assert settings.max_upload_bytes == 20 * 1024 * 1024


def test_placeholder_secret_fails_outside_development() -> None:
    with pytest.raises(ValidationError, match="LAPORHAM_TELEGRAM_TOKEN"):
        Settings(_env_file=None, environment="production", telegram_token="changeme")


def test_placeholder_secret_is_tolerated_in_development() -> None:
    assert Settings(_env_file=None, telegram_token="changeme").telegram_enabled


def test_every_setting_is_documented_in_env_example() -> None:
    from pathlib import Path

    example = (Path(__file__).parent.parent / ".env.example").read_text()
    for name in Settings.model_fields:
        assert f"LAPORHAM_{name.upper()}" in example, name
