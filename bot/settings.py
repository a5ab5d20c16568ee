"""Settings from the environment or `.env`, prefix `LAPORHAM_` (README.md, "Configuration";
.env.example)."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.invites import DEVELOPMENT_KEY, InvitePolicy

# Secrets that say they are placeholders, compared without case and punctuation
# ("ChangeMe", "change_me" and "CHANGE-ME" are all "changeme").
PLACEHOLDER_WORDS = frozenset(
    {"changeme", "xxx", "placeholder", "secret", "password", "token", "test", "example"}
)
# .env.example's own samples: copying the file must not give a working production setting.
SAMPLE_FRAGMENTS = ("your-token", "yourtoken", "123456789:aa")
# Shorter than this, a secret can be guessed (a webhook secret is checked on every POST).
MIN_SECRET_LENGTH = 16
SECRET_FIELDS = (
    "telegram_token",
    "telegram_webhook_secret",
    "whatsapp_token",
    "whatsapp_app_secret",
    "whatsapp_verify_token",
    "invite_secret",
)
# Development only: invite codes need a key to be hashed with even when none is configured.
# Production refuses it (it is public), like every placeholder.
DEVELOPMENT_INVITE_SECRET = DEVELOPMENT_KEY.decode()


class Environment(StrEnum):
    development = "development"
    production = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LAPORHAM_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Environment = Environment.development
    database_url: str = "sqlite+aiosqlite:///data/laporham.db"
    data_dir: Path = Path("data")
    language: str = Field(default="id", pattern="^(id|en)$")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    max_upload_mb: int = Field(default=20, ge=1, le=100)
    # SIGTERM/SIGINT: how long a graceful stop may take before what is left is cut short.
    shutdown_seconds: float = Field(default=10.0, gt=0, le=300)

    telegram_token: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: str | None = None
    # Our pace under Telegram's 30 messages/s per bot; the channel also never lets more than
    # 30 start or go unanswered within a second, so arrivals cannot bunch past the limit.
    telegram_messages_per_second: float = Field(default=29.5, gt=0, le=1000)

    whatsapp_token: str | None = None
    whatsapp_phone_number_id: str | None = None
    whatsapp_app_secret: str | None = None
    whatsapp_verify_token: str | None = None
    whatsapp_api_url: str = "https://graph.facebook.com/v21.0"
    whatsapp_template_language: str = "id"
    # upkeep: the language code of the English translations of the templates, for users who
    # chose English (/bahasa): outside the 24-hour window they get the template in English.
    whatsapp_template_language_en: str = "en"

    # upkeep: processed inbox rows and sent/failed outbox rows older than this are pruned
    # daily. At least 8 days: Meta redelivers a webhook for up to 7 days, and the inbox row is
    # what recognises the redelivery.
    retention_days: int = Field(default=90, ge=8, le=3650)

    # The public edge (docs/operations.md): HTTP limits, invite tries, inbound pace per sender.
    http_max_connections: int = Field(default=500, ge=10, le=100_000)
    http_keep_alive_seconds: int = Field(default=5, ge=1, le=300)
    # A request head (line and headers) must be complete this long after the connection opens
    # (or after a kept-alive connection's next request begins), else the connection is closed.
    http_head_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    http_body_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Keys the invite codes' hashes (HMAC-SHA256); changing it voids unredeemed codes.
    invite_secret: str | None = None
    invite_max_wrong_tries: int = Field(default=5, ge=1, le=1000)  # per sender and per code
    invite_window_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    # A sender's messages beyond the burst are handled at this pace (none is dropped).
    inbound_burst: int = Field(default=20, ge=1, le=10_000)
    inbound_per_minute: float = Field(default=30.0, gt=0, le=60_000)

    @model_validator(mode="after")
    def _production_is_complete_and_secret(self) -> Settings:
        if self.environment is Environment.development:
            return self
        problems = production_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def evidence_dir(self) -> Path:
        return self.data_dir / "evidence"

    @property
    def invite_key(self) -> bytes:
        """The key of the invite codes' HMAC (development has a public default)."""
        return (self.invite_secret or DEVELOPMENT_INVITE_SECRET).encode()

    @property
    def invite_policy(self) -> InvitePolicy:
        return InvitePolicy(
            key=self.invite_key,
            max_wrong_tries=self.invite_max_wrong_tries,
            window=timedelta(minutes=self.invite_window_minutes),
        )

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_token)

    @property
    def whatsapp_enabled(self) -> bool:
        return bool(self.whatsapp_token and self.whatsapp_phone_number_id)


def production_problems(settings: Settings) -> list[str]:
    """One sentence per problem that stops a production start."""
    problems: list[str] = []
    if not (settings.telegram_enabled or settings.whatsapp_enabled):
        problems.append(
            "production needs a chat channel: set LAPORHAM_TELEGRAM_TOKEN, or "
            "LAPORHAM_WHATSAPP_TOKEN and LAPORHAM_WHATSAPP_PHONE_NUMBER_ID "
            "(the console channel is for development only)"
        )
    if settings.whatsapp_enabled and not settings.whatsapp_app_secret:
        problems.append(
            "LAPORHAM_WHATSAPP_APP_SECRET is empty: every WhatsApp webhook would be refused; "
            "copy the app secret from Meta's app settings"
        )
    if not settings.invite_secret:
        problems.append(
            "LAPORHAM_INVITE_SECRET is unset: invite codes need a secret key of their own "
            "(at least 16 random characters, e.g. `openssl rand -hex 32`)"
        )
    elif settings.invite_secret.strip() == DEVELOPMENT_INVITE_SECRET:
        problems.append(
            "LAPORHAM_INVITE_SECRET is the public development key: set a secret of your own"
        )
    for name in SECRET_FIELDS:
        value = getattr(settings, name)
        if value is not None and (reason := _weak_secret(value)):
            problems.append(f"LAPORHAM_{name.upper()} {reason}")
    return problems


def _weak_secret(value: str) -> str | None:
    folded = "".join(ch for ch in value.lower() if ch.isalnum() or ch in ":-")
    if "".join(ch for ch in folded if ch.isalnum()) in PLACEHOLDER_WORDS:
        return "still holds a placeholder: set the real value, or unset it"
    if any(fragment in folded for fragment in SAMPLE_FRAGMENTS):
        return "still holds .env.example's sample: set the real value, or unset it"
    if len(value.strip()) < MIN_SECRET_LENGTH:
        return f"is too short to be a secret (at least {MIN_SECRET_LENGTH} characters)"
    return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
