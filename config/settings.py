"""Application settings: typed, read once from the environment.

Defaults suit development; production refuses to start without a real secret key.
Every variable is documented in the README ("Configuration").
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Keys that appear in tutorials, sample configs and old releases of BI tools. A deployment that
# uses one of them is as good as keyless (Superset CVE-2023-27524).
KNOWN_DEFAULT_KEYS = frozenset(
    {
        "",
        "dev",
        "development",
        "secret",
        "secret-key",
        "secret_key",
        "changeme",
        "change-me",
        "change_me",
        "CHANGE_ME",
        "CHANGE_ME_TO_A_COMPLEX_RANDOM_SECRET",
        "thisismysecretkey",
        "\x02\x01thisismyscretkey\x01\x02\\e\\y\\y\\h",
        "YOUR_OWN_RANDOM_GENERATED_SECRET_KEY",
        "TEST_NON_DEV_SECRET",
        "custseg-dev",
        "not-a-secret",
    }
)
MIN_SECRET_LENGTH = 32
# Distinct characters a key needs: 32 underscores or "changeme" four times are long enough but
# guessable; a random key of 32 characters has about 20 to 30.
MIN_SECRET_VARIETY = 10


class ConfigError(RuntimeError):
    """The environment does not describe a runnable configuration."""


def origin_of(url: str) -> str | None:
    """The origin of an http(s) URL as browsers send it in `Origin` (scheme://host[:port], lower
    case, the scheme's default port left out), or None when `url` has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        return None
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    if port is None or port == {"http": 80, "https": 443}[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _default_database_url() -> str:
    path = Path.cwd() / "instance" / "custseg.db"
    return f"sqlite:///{path}"


class Settings(BaseSettings):
    """All configuration of the app, the jobs and the CLI."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    env: Literal["development", "production", "test"] = Field(
        "production", validation_alias=AliasChoices("CUSTSEG_ENV", "env")
    )
    database_url: str = Field(
        default_factory=_default_database_url,
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
    )
    secret_key: str | None = Field(
        None, validation_alias=AliasChoices("SECRET_KEY", "secret_key"), repr=False
    )
    debug: bool = Field(False, validation_alias=AliasChoices("CUSTSEG_DEBUG", "debug"))
    instance_dir: Path = Field(
        default_factory=lambda: Path.cwd() / "instance",
        validation_alias=AliasChoices("CUSTSEG_INSTANCE_DIR", "instance_dir"),
    )

    # Segmentation
    k_min: int = Field(4, ge=2, le=30, validation_alias=AliasChoices("CUSTSEG_K_MIN", "k_min"))
    k_max: int = Field(8, ge=2, le=30, validation_alias=AliasChoices("CUSTSEG_K_MAX", "k_max"))
    k_margin: float = Field(
        0.01, ge=0, le=1, validation_alias=AliasChoices("CUSTSEG_K_MARGIN", "k_margin")
    )
    random_seed: int = Field(
        42, validation_alias=AliasChoices("CUSTSEG_RANDOM_SEED", "random_seed")
    )
    silhouette_sample: int = Field(
        20_000,
        ge=100,
        validation_alias=AliasChoices("CUSTSEG_SILHOUETTE_SAMPLE", "silhouette_sample"),
    )
    active_days: int = Field(
        90, ge=1, validation_alias=AliasChoices("CUSTSEG_ACTIVE_DAYS", "active_days")
    )
    snapshots_keep: int = Field(
        5, ge=1, validation_alias=AliasChoices("CUSTSEG_SNAPSHOTS_KEEP", "snapshots_keep")
    )
    snapshots_monthly: int = Field(
        12, ge=0, validation_alias=AliasChoices("CUSTSEG_SNAPSHOTS_MONTHLY", "snapshots_monthly")
    )
    refit_cron: str = Field(
        "0 3 * * *", validation_alias=AliasChoices("CUSTSEG_REFIT_CRON", "refit_cron")
    )
    # The refit's engine: "local" (pandas and scikit-learn in the refit's process) or "spark"
    # (db/spark_refit.py: PostgreSQL read over JDBC, features and K-Means in Spark; docs/DEPLOY.md).
    refit_engine: Literal["local", "spark"] = Field(
        "local", validation_alias=AliasChoices("CUSTSEG_REFIT_ENGINE", "refit_engine")
    )
    # A Spark master URL (local[*], spark://host:7077, yarn, k8s://...); under spark-submit the
    # master spark-submit was given wins.
    spark_master: str = Field(
        "local[*]", validation_alias=AliasChoices("CUSTSEG_SPARK_MASTER", "spark_master")
    )
    # The PostgreSQL JDBC driver (Debian: libpostgresql-jdbc-java), put in spark.jars.
    spark_jdbc_jar: str = Field(
        "/usr/share/java/postgresql.jar",
        validation_alias=AliasChoices("CUSTSEG_SPARK_JDBC_JAR", "spark_jdbc_jar"),
    )
    # jdbc:postgresql://host:port/db as Spark's executors reach the database, when that is not
    # DATABASE_URL's host (user and password still come from DATABASE_URL).
    spark_jdbc_url: str | None = Field(
        None, validation_alias=AliasChoices("CUSTSEG_SPARK_JDBC_URL", "spark_jdbc_url")
    )
    # Partitions of the JDBC read of the transactions (ranges of ordered_at, one query each).
    spark_partitions: int = Field(
        8,
        ge=1,
        le=10_000,
        validation_alias=AliasChoices("CUSTSEG_SPARK_PARTITIONS", "spark_partitions"),
    )

    # Predictions (analytics/predictions.py), attached to each snapshot after it is published
    predictions: bool = Field(
        True, validation_alias=AliasChoices("CUSTSEG_PREDICTIONS", "predictions")
    )
    clv_discount_rate: float = Field(
        0.10,
        ge=0,
        lt=1,
        validation_alias=AliasChoices("CUSTSEG_CLV_DISCOUNT_RATE", "clv_discount_rate"),
    )
    high_risk: float = Field(
        0.7, gt=0, le=1, validation_alias=AliasChoices("CUSTSEG_HIGH_RISK", "high_risk")
    )
    high_value_share: float = Field(
        0.2,
        gt=0,
        le=1,
        validation_alias=AliasChoices("CUSTSEG_HIGH_VALUE_SHARE", "high_value_share"),
    )
    # Campaign results are measured again daily (after the nightly refit), after each import and
    # on "Refresh results".
    campaign_results_cron: str = Field(
        "30 3 * * *",
        validation_alias=AliasChoices("CUSTSEG_CAMPAIGN_RESULTS_CRON", "campaign_results_cron"),
    )
    scheduler_poll_s: float = Field(
        2.0, gt=0, validation_alias=AliasChoices("CUSTSEG_SCHEDULER_POLL", "scheduler_poll_s")
    )

    # Web
    session_hours: int = Field(
        12,
        ge=1,
        le=24 * 30,
        validation_alias=AliasChoices("CUSTSEG_SESSION_HOURS", "session_hours"),
    )
    session_max_hours: int = Field(
        24 * 7,
        ge=1,
        le=24 * 365,
        validation_alias=AliasChoices("CUSTSEG_SESSION_MAX_HOURS", "session_max_hours"),
    )
    # None: Secure in production, not in development and test (see `secure_cookies`).
    cookie_secure: bool | None = Field(
        None, validation_alias=AliasChoices("CUSTSEG_COOKIE_SECURE", "cookie_secure")
    )
    trusted_proxies: int = Field(
        0, ge=0, le=5, validation_alias=AliasChoices("CUSTSEG_TRUSTED_PROXIES", "trusted_proxies")
    )
    # The address users reach the app at (e.g. https://analytics.shop.example): the app's own
    # origin for the cross-site check, and the base of links the app writes (e-mails).
    public_url: str | None = Field(
        None, validation_alias=AliasChoices("CUSTSEG_PUBLIC_URL", "public_url")
    )
    login_rate_limit: str = Field(
        "5 per minute",
        validation_alias=AliasChoices("CUSTSEG_LOGIN_RATE_LIMIT", "login_rate_limit"),
    )
    login_account_limit: str = Field(
        "100 per hour",
        validation_alias=AliasChoices("CUSTSEG_LOGIN_ACCOUNT_LIMIT", "login_account_limit"),
    )
    # memory://: each process counts for itself. redis://host:6379/0: every worker of every
    # instance counts together (several instances behind a proxy: docs/DEPLOY.md).
    ratelimit_storage_url: str = Field(
        "memory://",
        validation_alias=AliasChoices(
            "CUSTSEG_RATELIMIT_STORAGE_URL", "CUSTSEG_REDIS_URL", "ratelimit_storage_url"
        ),
    )
    # The prefix of the rate-limit keys in that storage (two apps sharing one Redis).
    ratelimit_key_prefix: str = Field(
        "custseg",
        validation_alias=AliasChoices("CUSTSEG_RATELIMIT_KEY_PREFIX", "ratelimit_key_prefix"),
    )
    # Published snapshots' large frames as Arrow files mapped by every worker (one copy per
    # machine, db/snapshot_files.py). None: `<instance_dir>/cache`.
    cache_dir: Path | None = Field(
        None, validation_alias=AliasChoices("CUSTSEG_CACHE_DIR", "cache_dir")
    )
    warm_caches: bool = Field(
        True, validation_alias=AliasChoices("CUSTSEG_WARM_CACHES", "warm_caches")
    )
    warm_interval_s: float = Field(
        30.0, gt=0, validation_alias=AliasChoices("CUSTSEG_WARM_INTERVAL", "warm_interval_s")
    )
    max_upload_mb: int = Field(
        200, ge=1, validation_alias=AliasChoices("CUSTSEG_MAX_UPLOAD_MB", "max_upload_mb")
    )
    export_row_cap: int = Field(
        200_000, ge=1, validation_alias=AliasChoices("CUSTSEG_EXPORT_ROW_CAP", "export_row_cap")
    )

    # Notifications (docs/NOTIFICATIONS.md): SMTP for e-mail, the webhook allow-list, the
    # daily run (weekly digests, catch-up) and the retries of a failed delivery.
    smtp_host: str | None = Field(
        None, validation_alias=AliasChoices("CUSTSEG_SMTP_HOST", "smtp_host")
    )
    # None: the port of the security (25, 587 for STARTTLS, 465 for SSL).
    smtp_port: int | None = Field(
        None, ge=1, le=65535, validation_alias=AliasChoices("CUSTSEG_SMTP_PORT", "smtp_port")
    )
    smtp_security: Literal["none", "starttls", "ssl"] = Field(
        "starttls", validation_alias=AliasChoices("CUSTSEG_SMTP_SECURITY", "smtp_security")
    )
    smtp_user: str | None = Field(
        None, validation_alias=AliasChoices("CUSTSEG_SMTP_USER", "smtp_user")
    )
    smtp_password: str | None = Field(
        None, validation_alias=AliasChoices("CUSTSEG_SMTP_PASSWORD", "smtp_password"), repr=False
    )
    smtp_from: str | None = Field(
        None, validation_alias=AliasChoices("CUSTSEG_SMTP_FROM", "smtp_from")
    )
    smtp_timeout_s: float = Field(
        30.0, gt=0, validation_alias=AliasChoices("CUSTSEG_SMTP_TIMEOUT", "smtp_timeout_s")
    )
    # Comma-separated host names webhooks may go to ("hooks.slack.com, .example.com": a
    # leading dot allows the subdomains). Empty: any host whose addresses are all public.
    webhook_hosts: str = Field(
        "", validation_alias=AliasChoices("CUSTSEG_WEBHOOK_HOSTS", "webhook_hosts")
    )
    webhook_timeout_s: float = Field(
        10.0, gt=0, validation_alias=AliasChoices("CUSTSEG_WEBHOOK_TIMEOUT", "webhook_timeout_s")
    )
    notify_cron: str = Field(
        "0 7 * * *", validation_alias=AliasChoices("CUSTSEG_NOTIFY_CRON", "notify_cron")
    )
    notify_retries: int = Field(
        3, ge=0, le=10, validation_alias=AliasChoices("CUSTSEG_NOTIFY_RETRIES", "notify_retries")
    )
    notify_backoff_s: float = Field(
        10.0,
        ge=0,
        le=3600,
        validation_alias=AliasChoices("CUSTSEG_NOTIFY_BACKOFF", "notify_backoff_s"),
    )

    # Bootstrap (make run)
    admin_email: str | None = Field(
        None, validation_alias=AliasChoices("CUSTSEG_ADMIN_EMAIL", "admin_email")
    )
    admin_password: str | None = Field(
        None, validation_alias=AliasChoices("CUSTSEG_ADMIN_PASSWORD", "admin_password"), repr=False
    )

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        """An http(s) URL with a host and nothing a link could not start with; "" means unset
        (docker-compose passes unset variables as empty)."""
        if value is None or not value.strip():
            return None
        value = value.strip()
        parts = urlsplit(value)
        problem = None
        if parts.scheme not in ("http", "https"):
            problem = "it does not start with http:// or https://"
        elif not parts.hostname:
            problem = "it names no host"
        elif parts.username is not None or parts.password is not None:
            problem = "it carries a user name or password"
        elif parts.query or parts.fragment:
            problem = "it has a query or fragment"
        elif any(ord(c) < 33 or c in '\\<>"' for c in value):
            problem = "it contains spaces, control characters or quotes"
        else:
            try:
                parts.port  # noqa: B018  # raises on a port that is not a number in range
            except ValueError:
                problem = "its port is not a number from 0 to 65535"
        if problem:
            raise ValueError(
                f"CUSTSEG_PUBLIC_URL ({value!r}) is not a URL such as "
                f"https://analytics.shop.example: {problem}"
            )
        return value.rstrip("/")

    @field_validator("smtp_port", mode="before")
    @classmethod
    def _empty_port_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("spark_jdbc_url")
    @classmethod
    def _check_spark_jdbc_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith("jdbc:postgresql://"):
            raise ValueError(
                f"CUSTSEG_SPARK_JDBC_URL ({value!r}) is not a URL such as "
                "jdbc:postgresql://db.internal:5432/custseg"
            )
        return value.strip()

    @field_validator("smtp_host", "smtp_user", "smtp_password", "smtp_from")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        """docker-compose passes unset variables as empty strings."""
        return value if value is None or value.strip() else None

    @field_validator("smtp_from")
    @classmethod
    def _check_from(cls, value: str | None) -> str | None:
        from email.utils import parseaddr

        if value is not None and "@" not in parseaddr(value)[1]:
            raise ValueError(
                f"CUSTSEG_SMTP_FROM ({value!r}) is not an address such as "
                "'Shop analytics <analytics@shop.example>'"
            )
        return value

    @field_validator("webhook_hosts")
    @classmethod
    def _check_webhook_hosts(cls, value: str) -> str:
        for host in (h.strip() for h in value.split(",")):
            bare = host.removeprefix(".")
            if host and (not bare or any(c in bare for c in "/:@ *?#")):
                raise ValueError(
                    f"CUSTSEG_WEBHOOK_HOSTS: {host!r} is not a host name (use 'hooks.slack.com' "
                    "or '.example.com' for its subdomains, comma-separated)"
                )
        return value

    @model_validator(mode="after")
    def _check_k_range(self) -> Settings:
        if self.k_min > self.k_max:
            raise ValueError(f"CUSTSEG_K_MIN ({self.k_min}) is above CUSTSEG_K_MAX ({self.k_max})")
        return self

    @model_validator(mode="after")
    def _check_rate_limits(self) -> Settings:
        from limits import parse_many

        for name, value, most in (
            ("CUSTSEG_LOGIN_RATE_LIMIT", self.login_rate_limit, None),
            ("CUSTSEG_LOGIN_ACCOUNT_LIMIT", self.login_account_limit, 1),
        ):
            try:
                items = parse_many(value)
            except ValueError:
                items = []
            if not items or (most is not None and len(items) > most):
                raise ValueError(f"{name} ({value!r}) is not a rate limit such as '5 per minute'")
        return self

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _empty_dir_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def snapshot_cache_dir(self) -> Path:
        """Where the snapshot files live: CUSTSEG_CACHE_DIR, else the instance folder's cache."""
        return self.cache_dir if self.cache_dir is not None else self.instance_dir / "cache"

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def public_origin(self) -> str | None:
        """The origin (scheme://host[:port], lower case, default port left out) of
        CUSTSEG_PUBLIC_URL, or None when it is not set."""
        return origin_of(self.public_url) if self.public_url else None

    @property
    def webhook_host_list(self) -> tuple[str, ...]:
        """CUSTSEG_WEBHOOK_HOSTS as lower-case names (a leading dot: any subdomain)."""
        return tuple(h.strip().lower() for h in self.webhook_hosts.split(",") if h.strip())

    @property
    def secure_cookies(self) -> bool:
        """Whether the session cookie is Secure: CUSTSEG_COOKIE_SECURE, else production only."""
        return self.is_production if self.cookie_secure is None else self.cookie_secure

    def resolved_secret_key(self) -> str:
        """The key that signs sessions.

        Outside development a missing, known-default, short or repetitive key is refused, and so
        is debug (the Werkzeug debugger runs code for whoever reaches it). In development a
        random key is generated once and kept under the instance folder, so sessions survive a
        restart of `make run`.
        """
        key = self.secret_key
        if self.env != "development":
            generate = "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            if not key:
                raise ConfigError(f"SECRET_KEY is not set. Generate one with {generate}.")
            if key in KNOWN_DEFAULT_KEYS or len(key) < MIN_SECRET_LENGTH:
                raise ConfigError(
                    "SECRET_KEY is a known default or shorter than "
                    f"{MIN_SECRET_LENGTH} characters; set a long random value."
                )
            if len(set(key)) < MIN_SECRET_VARIETY:
                raise ConfigError(
                    f"SECRET_KEY has too little variety ({len(set(key))} distinct characters, "
                    f"at least {MIN_SECRET_VARIETY} needed): it is guessable. Generate one with "
                    f"{generate}."
                )
            if self.debug:
                raise ConfigError(
                    f"CUSTSEG_DEBUG must be off outside development (CUSTSEG_ENV={self.env}): "
                    "debug serves the Werkzeug debugger."
                )
            return key
        if key:
            return key
        path = self.instance_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        generated = secrets.token_urlsafe(48)
        path.write_text(generated)
        path.chmod(0o600)
        return generated


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    try:
        return Settings()
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise ConfigError(str(exc)) from exc
