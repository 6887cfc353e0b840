"""Every setting of hearme, read once from the environment (prefix `HEARME_`)."""

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The delays after each failed delivery (Standard Webhooks' schedule): 8 attempts over
# 27.6 hours, each delay jittered by up to 10% either way.
DEFAULT_RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEARME_", extra="ignore")

    database_url: str = "sqlite:///./hearme.db"
    max_body: int = Field(default=1024 * 1024, ge=1024)
    max_import: int = Field(default=512 * 1024 * 1024, ge=1024)
    min_cell: int = Field(default=5, ge=1)
    # the disclosure audit of one release; past it, unproven tables are withheld
    release_audit_seconds: float = Field(default=120.0, gt=0)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    db_pool_size: int = Field(default=10, ge=1)
    # Where a worker stores its submissions' group-commit batches (`service.writer`): a
    # writer process of its own ("process", on another core), or a thread of the worker.
    submit_writer: Literal["process", "thread"] = "process"
    # PostgreSQL: seconds to connect (and to wait for a pooled connection) before a 503,
    # and the longest a statement of a request may run on the server (0: no limit; the
    # CLI's migrations and cell rebuilds, which take minutes at a million responses, have
    # none).
    db_connect_timeout: int = Field(default=3, ge=1, le=60)
    db_statement_timeout: int = Field(default=60, ge=0)
    import_batch_size: int = Field(default=2000, ge=1)
    # Rate limits (api/limits.py): requests a minute per key, failed authentications a
    # minute per client address, and where the counters live (a `limits` storage URI).
    rate_limit: int = Field(default=1200, ge=1)
    auth_failure_limit: int = Field(default=20, ge=1)
    rate_limit_storage: str = "memory://"
    audit_retention_days: int = Field(default=365, ge=1)
    # Events and webhooks (contract §9; service/events/).
    event_retention_days: int = Field(default=90, ge=1)
    secret_key: str | None = Field(default=None, min_length=16)
    secret_key_file: str = "./hearme-secret.key"  # noqa: S105  (a path, made when missing)
    webhook_timeout: float = Field(default=10.0, gt=0, le=120)
    webhook_retry_schedule: Annotated[list[NonNegativeInt], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE)
    )
    webhook_allow_private: bool = False
    webhook_dispatch: bool = True
    # prometheus_client's own variable: set by `hearme serve --workers N` so that the
    # metrics of every worker process are summed.
    prometheus_multiproc_dir: str | None = Field(
        default=None, validation_alias="PROMETHEUS_MULTIPROC_DIR"
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """The environment gives origins as one comma-separated string."""
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        """Comma-separated seconds to wait after each failed attempt."""
        if isinstance(value, str):
            return [int(v.strip()) for v in value.split(",") if v.strip()]
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
