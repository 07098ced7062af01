"""Settings, read once from the environment and passed down explicitly."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import URL, make_url

from core.errors import ValidationError

DEVICES = ("auto", "cpu", "cuda")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as e:
        raise ValidationError(f"{name}={raw!r} is not a whole number") from e
    if value <= 0:
        raise ValidationError(f"{name}={raw!r} must be positive")
    return value


def _log_level(env: Mapping[str, str]) -> str | None:
    raw = env.get("DEFECTLENS_LOG_LEVEL") or ""
    level = raw.strip().upper()
    if not level:
        return None
    if level not in LOG_LEVELS:
        raise ValidationError(
            f"DEFECTLENS_LOG_LEVEL={raw!r} must be one of {', '.join(LOG_LEVELS)}"
        )
    return level


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as e:
        raise ValidationError(f"{name}={raw!r} is not a number") from e
    if value < 0:
        raise ValidationError(f"{name}={raw!r} must not be negative")
    return value


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if value == 0:
        raise ValidationError(f"{name} must be more than 0")
    return value


def _shifts(raw: str) -> tuple[str, ...]:
    """Shift start times as sorted HH:MM strings; ValidationError names the bad one."""
    starts: list[str] = []
    for part in raw.split(","):
        text = part.strip()
        match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text)
        if match is None:
            raise ValidationError(
                f"DEFECTLENS_SHIFTS: {text!r} is not a time like 06:00 (24-hour HH:MM)"
            )
        starts.append(f"{int(match.group(1)):02d}:{match.group(2)}")
    if len(set(starts)) != len(starts):
        raise ValidationError(f"DEFECTLENS_SHIFTS={raw!r} names a start time twice")
    return tuple(sorted(starts))


@dataclass(frozen=True)
class Settings:
    """Every DefectLens setting; README lists each with its default."""

    home: Path
    db_url: str
    device: str = "auto"
    port: int = 8501
    # Folders the browser's "Folder on the server" import may read (DEFECTLENS_IMPORT_ROOTS);
    # empty: the data directory's import/ folder only.
    import_roots: tuple[Path, ...] = ()
    # Proxies whose X-Forwarded-For names the browser's address (login throttling per address).
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    # The interface the web server listens on: all of them by default; 127.0.0.1 behind a proxy.
    listen_address: str = "0.0.0.0"
    timezone: str = "UTC"
    # Shift start times in plant-local time (DEFECTLENS_SHIFTS, e.g. "06:00,14:00,22:00").
    shift_starts: tuple[str, ...] = ("06:00", "14:00", "22:00")
    max_upload_mb: int = 200
    max_image_bytes: int = 50 * 1024 * 1024
    max_image_pixels: int = 50_000_000
    max_zip_entries: int = 100_000
    max_zip_total_bytes: int = 4 * 1024**3
    # What one Inspect-page submission may upload in all (each file: max_upload_mb).
    max_request_mb: int = 1024
    max_zip_ratio: int = 200
    num_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    login_delay_s: float = 0.5
    # A login ends after this long without a request, and in any case this long after it began.
    session_idle_hours: float = 12.0
    session_max_days: float = 7.0
    # Mark the session cookie Secure (send it over HTTPS only): on behind a TLS proxy.
    secure_cookies: bool = False
    ray_address: str = ""
    # Single sign-on (OpenID Connect, core/auth/oidc.py): on when the metadata URL is set.
    sso_metadata_url: str = ""
    sso_client_id: str = ""
    sso_client_secret: str = field(default="", repr=False)
    sso_redirect_uri: str = ""  # empty: this server's own /session/sso/callback
    # Refuse an SSO login whose e-mail the provider does not vouch for (email_verified). Off only
    # for a provider that sends no such claim and whose every address is the plant's own.
    sso_require_email_verified: bool = True
    # A running job whose heartbeat is older than this is marked failed by any worker's sweep.
    job_heartbeat_timeout_s: float = 30.0
    # How often an idle worker looks for queued jobs.
    worker_poll_s: float = 2.0
    # How many times a job may start: one whose training process or worker died is queued again
    # and resumes from its last finished epoch until it has started this many times (1: never).
    job_max_attempts: int = 3
    # DEFECTLENS_LOG_LEVEL; None when unset: the CLI then logs warnings, the worker also info.
    log_level: str | None = None

    @property
    def sso_enabled(self) -> bool:
        """Whether the login form offers single sign-on."""
        return bool(self.sso_metadata_url)

    @property
    def db_url_without_password(self) -> str:
        """The database URL with its password left out: what may travel to other machines
        (a Ray job's runtime env, which the Ray dashboard shows to anyone who reaches it)."""
        url = make_url(self.db_url)
        return URL.create(
            url.drivername,
            username=url.username,
            host=url.host,
            port=url.port,
            database=url.database,
            query=url.query,
        ).render_as_string(hide_password=False)

    @property
    def import_dirs(self) -> tuple[Path, ...]:
        """Where a server-folder import may read: the configured roots, else home/import."""
        return self.import_roots or (self.home / "import",)

    @property
    def images_dir(self) -> Path:
        return self.home / "images"

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")

    def ensure_dirs(self) -> None:
        """Create the data directory and its sub-folders; the directory is the owner's only, so
        files made before the umask (an older version, a copy) are not readable by others."""
        for path in (self.home, self.images_dir, self.datasets_dir, self.models_dir, self.jobs_dir):
            path.mkdir(parents=True, exist_ok=True)
        if not self.import_roots:
            (self.home / "import").mkdir(exist_ok=True)
        if self.home.stat().st_uid == os.getuid():
            self.home.chmod(0o700)


def _import_roots(text: str) -> tuple[Path, ...]:
    """DEFECTLENS_IMPORT_ROOTS: absolute folders separated by ':' (os.pathsep)."""
    roots = [Path(part).expanduser() for part in text.split(os.pathsep) if part.strip()]
    relative = [str(r) for r in roots if not r.is_absolute()]
    if relative:
        raise ValidationError(f"DEFECTLENS_IMPORT_ROOTS: {relative[0]!r} is not an absolute path")
    return tuple(roots)


def _secret_file(setting: str, path_text: str) -> str:
    """The secret in a file only its owner can read (a systemd credential, a mounted secret)."""
    path = Path(path_text.strip()).expanduser()
    try:
        mode = path.stat().st_mode
        secret = path.read_text(encoding="utf-8").strip("\r\n")
    except OSError as e:
        raise ValidationError(f"{setting}: cannot read {path} ({e.strerror or e})") from None
    if mode & 0o077:
        raise ValidationError(f"{setting}: {path} can be read by other users; chmod 600 it")
    return secret


def _sso(env: Mapping[str, str]) -> dict[str, str]:
    """The DEFECTLENS_SSO_* settings, checked: a provider needs a client id, and its keys and
    tokens travel over HTTPS except to this machine itself."""
    url = (env.get("DEFECTLENS_SSO_METADATA_URL") or "").strip()
    if not url:
        return {}
    parts = urlsplit(url)
    local = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise ValidationError(
            f"DEFECTLENS_SSO_METADATA_URL={url!r} must be an https:// URL (http only to localhost)"
        )
    client_id = (env.get("DEFECTLENS_SSO_CLIENT_ID") or "").strip()
    if not client_id:
        raise ValidationError(
            "DEFECTLENS_SSO_METADATA_URL is set but DEFECTLENS_SSO_CLIENT_ID is not"
        )
    secret_file = env.get("DEFECTLENS_SSO_CLIENT_SECRET_FILE") or ""
    secret = _secret_file("DEFECTLENS_SSO_CLIENT_SECRET_FILE", secret_file) if secret_file else ""
    redirect = (env.get("DEFECTLENS_SSO_REDIRECT_URI") or "").strip()
    if redirect and urlsplit(redirect).scheme not in ("http", "https"):
        raise ValidationError(f"DEFECTLENS_SSO_REDIRECT_URI={redirect!r} is not an http(s) URL")
    return {"sso_metadata_url": url, "sso_client_id": client_id, "sso_client_secret": secret,
            "sso_redirect_uri": redirect}  # fmt: skip


def _with_password_file(db_url: str, password_file: str) -> str:
    """DEFECTLENS_DB_PASSWORD_FILE: the database password read from a file only its owner can
    read (a Ray node's or a systemd credential), put into a URL that has none. Without it, a
    PostgreSQL URL with no password still finds one in libpq's ~/.pgpass or PGPASSWORD."""
    if not password_file.strip():
        return db_url
    password = _secret_file("DEFECTLENS_DB_PASSWORD_FILE", password_file)
    url = make_url(db_url)
    if url.password is not None:
        raise ValidationError(
            "DEFECTLENS_DB_PASSWORD_FILE is set but DEFECTLENS_DB_URL has a password too; "
            "leave the password out of the URL"
        )
    return url.set(password=password).render_as_string(hide_password=False)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from the environment (or the mapping given, for tests)."""
    env = os.environ if env is None else env
    home = Path(env.get("DEFECTLENS_HOME") or "data").expanduser().resolve()
    db_url = env.get("DEFECTLENS_DB_URL") or f"sqlite:///{home / 'defectlens.db'}"
    db_url = _with_password_file(db_url, env.get("DEFECTLENS_DB_PASSWORD_FILE") or "")
    device = (env.get("DEFECTLENS_DEVICE") or "auto").lower()
    if device not in DEVICES:
        raise ValidationError(f"DEFECTLENS_DEVICE={device!r} must be one of {', '.join(DEVICES)}")
    return Settings(
        home=home,
        db_url=db_url,
        device=device,
        port=_int(env, "DEFECTLENS_PORT", 8501),
        listen_address=(env.get("DEFECTLENS_LISTEN_ADDRESS") or "0.0.0.0").strip(),
        import_roots=_import_roots(env.get("DEFECTLENS_IMPORT_ROOTS") or ""),
        trusted_proxies=tuple(
            a.strip()
            for a in (env.get("DEFECTLENS_TRUSTED_PROXIES") or "127.0.0.1,::1").split(",")
            if a.strip()
        ),
        timezone=env.get("DEFECTLENS_TIMEZONE") or "UTC",
        shift_starts=_shifts(env.get("DEFECTLENS_SHIFTS") or "06:00,14:00,22:00"),
        max_upload_mb=_int(env, "DEFECTLENS_MAX_UPLOAD_MB", 200),
        max_image_bytes=_int(env, "DEFECTLENS_MAX_IMAGE_BYTES", 50 * 1024 * 1024),
        max_image_pixels=_int(env, "DEFECTLENS_MAX_IMAGE_PIXELS", 50_000_000),
        max_zip_entries=_int(env, "DEFECTLENS_MAX_ZIP_ENTRIES", 100_000),
        max_zip_total_bytes=_int(env, "DEFECTLENS_MAX_ZIP_BYTES", 4 * 1024**3),
        max_zip_ratio=_int(env, "DEFECTLENS_MAX_ZIP_RATIO", 200),
        max_request_mb=_int(env, "DEFECTLENS_MAX_REQUEST_MB", 1024),
        num_threads=_int(env, "DEFECTLENS_NUM_THREADS", os.cpu_count() or 1),
        login_delay_s=_float(env, "DEFECTLENS_LOGIN_DELAY_S", 0.5),
        session_idle_hours=_positive(env, "DEFECTLENS_SESSION_IDLE_HOURS", 12.0),
        session_max_days=_positive(env, "DEFECTLENS_SESSION_MAX_DAYS", 7.0),
        secure_cookies=(env.get("DEFECTLENS_SECURE_COOKIES") or "").lower() in ("1", "true", "yes"),
        ray_address=env.get("DEFECTLENS_RAY_ADDRESS") or "",
        **_sso(env),
        sso_require_email_verified=(env.get("DEFECTLENS_SSO_REQUIRE_EMAIL_VERIFIED") or "1").lower()
        not in ("0", "false", "no"),
        job_heartbeat_timeout_s=_float(env, "DEFECTLENS_JOB_HEARTBEAT_TIMEOUT_S", 30.0),
        worker_poll_s=_float(env, "DEFECTLENS_WORKER_POLL_S", 2.0),
        job_max_attempts=_int(env, "DEFECTLENS_JOB_MAX_ATTEMPTS", 3),
        log_level=_log_level(env),
    )
