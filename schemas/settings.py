"""Settings: from flags, environment (``ACCESSWATCH_*``) or a TOML file, in that order.

Local and production differ by this one object (paths, keys, limits), never by code edits.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from schemas.alerts import AlertSettings

DEMO_PSEUDONYM_KEY = "DEMO-KEY-not-secret-for-synthetic-sample-data-only"
"""The key `make demo` uses on synthetic data. Never use it on real logs."""

CONFIG_ENV = "ACCESSWATCH_CONFIG"
_config_file: ContextVar[Path | None] = ContextVar("accesswatch_config_file", default=None)


class Settings(BaseSettings):
    """Effective settings of one run. Precedence: flags > ``ACCESSWATCH_*`` env > TOML file."""

    # "__" reaches into a section: ACCESSWATCH_ALERTS__MIN_SCORE is [alerts] min_score.
    model_config = SettingsConfigDict(
        env_prefix="ACCESSWATCH_", env_nested_delimiter="__", extra="ignore"
    )

    home: Path = Field(default=Path("var"), description="State folder: lake, quarantine, warehouse")
    landing: Path = Field(default=Path("landing"), description="Raw delivery folder (read only)")
    pseudonym_key: SecretStr | None = Field(
        default=None, description="HMAC key for ULN pseudonyms (required to ingest LRS data)"
    )
    max_bad_share: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="Refuse a delivery file whose share of bad rows exceeds this...",
    )
    refuse_min_bad_rows: int = Field(
        default=10,
        ge=1,
        description="...and at least this many bad rows (a typo in a 15-row file is not drift)",
    )
    chunk_rows: int = Field(
        default=250_000, ge=1_000, le=10_000_000, description="Rows parsed at once while streaming"
    )
    duckdb_memory_limit: str = Field(default="2GB", pattern=r"^\d+(\.\d+)?\s*(MB|GB|MiB|GiB)$")
    duckdb_threads: int = Field(default=2, ge=1, le=256)
    timezone: str = Field(default="Europe/London", description="Zone that defines an event's day")
    # Flows (nightly, backfill, serve) and scale-out
    nightly_cron: str = Field(
        default="30 2 * * *",
        pattern=r"^\S+ \S+ \S+ \S+ \S+$",
        description="When the served nightly deployment runs (cron, in `timezone`)",
    )
    step_lock_wait_seconds: float = Field(
        default=3600,
        ge=0,
        description="How long a step of a running job waits for the writer lock",
    )
    rescore_max_days: int = Field(
        default=35,
        ge=0,
        le=3650,
        description="Nightly re-scores days touched by late events up to this many days back",
    )
    late_delivery_days: int = Field(
        default=2,
        ge=0,
        le=35,
        description=(
            "Backfill scores a day once the deliveries up to this many days later are in;"
            " events later than that re-score it"
        ),
    )
    workers: int = Field(
        default=1, ge=1, le=256, description="Backfill: local Dask worker processes (1 = none)"
    )
    dask_address: str | None = Field(
        default=None, description="Backfill: an existing Dask scheduler, tcp://host:port"
    )
    alerts: AlertSettings = Field(
        default_factory=AlertSettings, description="[alerts]: notifications after the nightly"
    )

    @field_validator("pseudonym_key")
    @classmethod
    def _key_is_long_enough(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 16:
            raise ValueError("the pseudonym key must be at least 16 characters long")
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _config_file.get() or Path(os.environ.get(CONFIG_ENV, "accesswatch.toml"))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )

    @property
    def lake(self) -> Path:
        return self.home / "lake"

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    def key_bytes(self) -> bytes:
        """The pseudonym key, or a clear error when none is set."""
        if self.pseudonym_key is None:
            raise ValueError(
                "no pseudonym key: set ACCESSWATCH_PSEUDONYM_KEY (at least 16 characters) "
                "or pseudonym_key in the TOML file; ULNs are never stored in clear"
            )
        return self.pseudonym_key.get_secret_value().encode()

    def masked(self) -> dict[str, Any]:
        """Settings as plain values with secrets masked, for display."""
        out = self.model_dump(mode="json")
        if self.pseudonym_key is not None:
            key = self.pseudonym_key.get_secret_value()
            out["pseudonym_key"] = "DEMO KEY" if key == DEMO_PSEUDONYM_KEY else "********"
        return out


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings; ``overrides`` are flags (None values are ignored)."""
    if config_file is not None and not config_file.is_file():
        raise FileNotFoundError(f"config file {config_file} does not exist")
    token = _config_file.set(config_file)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    finally:
        _config_file.reset(token)
