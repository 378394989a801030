"""Settings from environment variables (``SHOP_*``), read once at import (the init phase)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOP_")

    #: Where report jobs go: ``sqlite:///shop.db`` locally, ``sqs://<queue-url>?table=<table>``
    #: on AWS (the SAM template sets it).
    queue_url: str = "sqlite:///shop.db"
    #: HS256 secret the status endpoints verify bearer tokens with. Required: no default secret.
    jwt_secret: str = Field(min_length=16)
    #: Audit records, the fake mail outbox and exported spans go below this directory (on Lambda
    #: only /tmp is writable).
    data_dir: Path = Path("/tmp/shop")
    #: The payment provider checkout calls; unset means it is down (the error path).
    payments_url: str | None = None
    #: Seconds the fake mail server takes to accept a message.
    mail_delay: float = 0.2
    log_level: str = "INFO"

    @property
    def audit_log(self) -> Path:
        return self.data_dir / "audit.jsonl"

    @property
    def outbox(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def spans(self) -> Path:
        return self.data_dir / "spans.jsonl"


settings = Settings()
