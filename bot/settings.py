"""Settings from the environment or `.env`, prefix `LAPORHAM_` (README.md, "Configuration";
.env.example)."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A secret still holding one of these after copying .env.example is a mistake outside development.
PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "CHANGE_ME", "xxx", "placeholder"})
SECRET_FIELDS = (
    "telegram_token",
    "telegram_webhook_secret",
    "whatsapp_token",
    "whatsapp_app_secret",
    "whatsapp_verify_token",
)


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

    telegram_token: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: str | None = None

    whatsapp_token: str | None = None
    whatsapp_phone_number_id: str | None = None
    whatsapp_app_secret: str | None = None
    whatsapp_verify_token: str | None = None
    whatsapp_api_url: str = "https://graph.facebook.com/v21.0"
    whatsapp_template_language: str = "id"

    @model_validator(mode="after")
    def _no_placeholder_secrets_outside_development(self) -> Settings:
        if self.environment is Environment.development:
            return self
        left = [
            f"LAPORHAM_{name.upper()}"
            for name in SECRET_FIELDS
            if (getattr(self, name) or "").strip() in PLACEHOLDER_SECRETS
        ]
        if left:
            raise ValueError(
                "these secrets still hold a placeholder from .env.example: "
                + ", ".join(left)
                + ". Set real values, or unset them to disable that channel."
            )
        return self

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def evidence_dir(self) -> Path:
        return self.data_dir / "evidence"

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_token)

    @property
    def whatsapp_enabled(self) -> bool:
        return bool(self.whatsapp_token and self.whatsapp_phone_number_id)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
