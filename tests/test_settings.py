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


GOOD_TELEGRAM = "7012345678:AAH3kq9ZpX4mN2vB8cD5eF1gH7jK0lM3nQ"


GOOD_INVITE_SECRET = "f3b9c2a7e1d84c6b9a0f5e2d7c1b8a43"


def production(**values: str) -> Settings:
    values.setdefault("invite_secret", GOOD_INVITE_SECRET)
    return Settings(_env_file=None, environment="production", **values)  # type: ignore[arg-type]


def test_a_complete_production_configuration_starts() -> None:
    assert production(telegram_token=GOOD_TELEGRAM).telegram_enabled


@pytest.mark.parametrize(
    "token",
    [
        "changeme",
        "ChangeMe",
        "change_me",
        "CHANGE-ME",
        " changeme ",
        "123456789:AA...your-token...",  # .env.example's own sample
        "x",
        "short-secret",
    ],
)
def test_production_refuses_weak_or_sample_secrets(token: str) -> None:
    with pytest.raises(ValidationError, match="LAPORHAM_TELEGRAM_TOKEN"):
        production(telegram_token=token)


def test_production_refuses_to_start_without_a_chat_channel() -> None:
    """Else it would start the console channel, where /kontak of any number logs in."""
    with pytest.raises(ValidationError, match="needs a chat channel"):
        production()


def test_production_refuses_whatsapp_without_its_app_secret() -> None:
    with pytest.raises(ValidationError, match="LAPORHAM_WHATSAPP_APP_SECRET is empty"):
        production(whatsapp_token="EAAG" + "x" * 60, whatsapp_phone_number_id="1234567890")


def test_every_problem_is_its_own_line() -> None:
    with pytest.raises(ValidationError) as raised:
        production(
            whatsapp_token="changeme",
            whatsapp_phone_number_id="1234567890",
            whatsapp_verify_token="abc",
        )
    lines = raised.value.errors()[0]["msg"].splitlines()
    assert len(lines) == 3
    assert "LAPORHAM_WHATSAPP_APP_SECRET is empty" in lines[0]
    assert "LAPORHAM_WHATSAPP_TOKEN still holds a placeholder" in lines[1]
    assert "LAPORHAM_WHATSAPP_VERIFY_TOKEN is too short" in lines[2]


@pytest.mark.parametrize("secret", [None, "changeme", "short", "laporham-development-invite-key"])
def test_production_refuses_a_missing_or_weak_invite_secret(secret: str | None) -> None:
    """Hardening issue #13, item 2: invite codes are keyed with a secret of the server's own."""
    with pytest.raises(ValidationError, match="LAPORHAM_INVITE_SECRET"):
        production(telegram_token=GOOD_TELEGRAM, invite_secret=secret)  # type: ignore[arg-type]
