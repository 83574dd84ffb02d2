"""Settings, read from the environment and from a ``.env`` file in the working directory."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

TOKEN_VAR = "ACEDATACLOUD_API_TOKEN"
BASE_URL_VAR = "ACEDATACLOUD_API_BASE_URL"
DEFAULT_BASE_URL = "https://api.acedata.cloud"
DEFAULT_TIMEOUT = 900.0
DEFAULT_CALL_TIMEOUT = 1800.0
DEFAULT_MAX_RETRIES = 2
MAX_RETRIES_CAP = 10
DEFAULT_RETURN_AFTER = 45.0
#: The store of a ``Settings`` built in code (tests, benchmarks); the environment's default is
#: the per-user file of :func:`default_store`.
DEFAULT_STORE = "memory"
STORE_FILE = "conversations.db"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
EVENT_LOOPS = ("auto", "uvloop", "asyncio")

#: Every variable the server reads, with its default and meaning (``--help``, ``--check``, README).
ENV_VARS: tuple[tuple[str, str, str], ...] = (
    (TOKEN_VAR, "(none)", "Bearer token for AceDataCloud; calls fail with a clear error without it"),
    (BASE_URL_VAR, DEFAULT_BASE_URL, "API base URL (http:// or https://)"),
    ("GROK_REQUEST_TIMEOUT", "900", "seconds to wait for upstream data (read timeout)"),
    ("GROK_CALL_TIMEOUT", "1800", "seconds one call may take in all, retries included (deadline)"),
    ("GROK_MAX_RETRIES", "2", "retries on 429/500/502/503 and connection failures (0 disables, at most 10)"),
    ("GROK_RETURN_AFTER", "45", "seconds after which a running call returns status 'running' (0: never)"),
    (
        "GROK_STORE",
        f"a per-user file, {STORE_FILE}",
        "conversations, tasks, budgets, sign-ins: sqlite:///path, memory, redis://..., rediss://... or off",
    ),
    (
        "GROK_BUDGET",
        "(none)",
        "spend cap per token and UTC window: <amount>usd/<hour|day|month>, e.g. 5usd/day",
    ),
    ("GROK_CONFIRM_CALLS", "0", "1: hosts ask the user before every call (no read-only hint)"),
    ("LOG_LEVEL", "INFO", "stderr log level: DEBUG, INFO, WARNING, ERROR"),
    ("GROK_EVENT_LOOP", "auto", "auto (uvloop where installed), uvloop or asyncio"),
    ("GROK_OAUTH_KEY", "(none)", "--auth oauth: Fernet key(s) that encrypt stored AceDataCloud tokens"),
)


def state_dir(environ: Mapping[str, str]) -> Path:
    """This user's state directory for grok-chat-mcp, where the default conversation file lives."""
    if sys.platform == "win32":
        base = environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = str(Path.home() / "Library" / "Application Support")
    else:
        base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "grok-chat-mcp"


def default_store(environ: Mapping[str, str]) -> str:
    """``GROK_STORE`` when unset: an SQLite file in :func:`state_dir`, so follow-ups survive restarts."""
    return f"sqlite://{(state_dir(environ) / STORE_FILE).as_posix()}"


@dataclass(frozen=True)
class Settings:
    """Effective configuration of one server process."""

    api_token: str | None = field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = 10.0
    call_timeout: float = DEFAULT_CALL_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    return_after: float = DEFAULT_RETURN_AFTER
    store: str = DEFAULT_STORE
    log_level: str = "INFO"
    event_loop: str = "auto"
    #: ``--auth oauth``: the Fernet key(s) that encrypt stored AceDataCloud tokens.
    oauth_key: str | None = field(default=None, repr=False)
    #: ``GROK_BUDGET`` as given (``5usd/day``); a value that does not parse refuses every call.
    budget: str | None = None
    #: ``GROK_CONFIRM_CALLS``: the tool is marked as needing the user's confirmation.
    confirm_calls: bool = False
    #: Where each variable's value came from: "environment", the .env path, or "default".
    sources: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: Values that were refused and replaced by the default, with the reason.
    replaced: Mapping[str, str] = field(default_factory=dict)
    #: Why calls cannot work with this configuration (a base URL without a scheme), if so.
    problem: str | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/grok/chat/completions"

    @property
    def token_source(self) -> str:
        return self.sources.get(TOKEN_VAR, "default")

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(self.replaced.values())


def load_settings(environ: Mapping[str, str] | None = None, env_file: Path | None = None) -> Settings:
    """Read settings; the real environment wins over ``.env``. Never raises on bad values."""
    environ = os.environ if environ is None else environ
    env_file = Path.cwd() / ".env" if env_file is None else env_file
    file_values: dict[str, str] = {}
    if env_file.is_file():
        from dotenv import dotenv_values  # only when there is a file to read (start-up time)

        file_values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    reader = _Reader(environ, file_values, str(env_file))

    token = reader.get(TOKEN_VAR)
    base_url = reader.get(BASE_URL_VAR) or DEFAULT_BASE_URL
    problem = None
    if not base_url.lower().startswith(("http://", "https://")):
        problem = (
            f"{BASE_URL_VAR}={base_url!r} does not start with http:// or https://; "
            f"fix it (the default is {DEFAULT_BASE_URL})"
        )
    timeout = reader.number("GROK_REQUEST_TIMEOUT", DEFAULT_TIMEOUT, positive=True)
    retries = reader.number("GROK_MAX_RETRIES", DEFAULT_MAX_RETRIES, whole=True, cap=MAX_RETRIES_CAP)
    level = (reader.get("LOG_LEVEL") or "INFO").upper()
    level = "WARNING" if level == "WARN" else level
    budget = reader.get("GROK_BUDGET")
    if budget is not None:
        from grok_chat_mcp.budget import parse

        try:
            parse(budget)
        except ValueError as exc:
            reader.replaced["GROK_BUDGET"] = f"{exc}; every call is refused until it is fixed"
    return Settings(
        api_token=token,
        base_url=base_url.rstrip("/"),
        timeout=timeout,
        connect_timeout=min(10.0, timeout),
        call_timeout=reader.number("GROK_CALL_TIMEOUT", DEFAULT_CALL_TIMEOUT, positive=True),
        max_retries=int(retries),
        return_after=reader.number("GROK_RETURN_AFTER", DEFAULT_RETURN_AFTER),
        store=reader.choice(
            "GROK_STORE", default_store(environ), prefixes=("sqlite:///", "redis://", "rediss://")
        ),
        log_level=reader.check("LOG_LEVEL", level, LOG_LEVELS, "INFO"),
        event_loop=reader.check(
            "GROK_EVENT_LOOP", (reader.get("GROK_EVENT_LOOP") or "auto").lower(), EVENT_LOOPS, "auto"
        ),
        oauth_key=reader.get("GROK_OAUTH_KEY"),
        budget=budget,
        confirm_calls=reader.flag("GROK_CONFIRM_CALLS"),
        sources=reader.sources,
        replaced=reader.replaced,
        problem=problem,
    )


class _Reader:
    """Reads variables, remembering each one's source and every value it had to replace."""

    def __init__(self, environ: Mapping[str, str], file_values: Mapping[str, str], file_name: str) -> None:
        self._environ = environ
        self._file = file_values
        self._file_name = file_name
        self.sources: dict[str, str] = {}
        self.replaced: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        for values, source in ((self._environ, "environment"), (self._file, self._file_name)):
            value = values.get(name)
            if value is not None and value.strip():
                self.sources[name] = source
                return value.strip()
        self.sources[name] = "default"
        return None

    def _replace(self, name: str, raw: str, why: str, default: object) -> None:
        self.replaced[name] = f"{name}={raw!r} {why}; using {default}"

    def number(
        self,
        name: str,
        default: float,
        *,
        positive: bool = False,
        whole: bool = False,
        cap: float | None = None,
    ) -> float:
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            self._replace(name, raw, "is not a number", f"{default:g}")
            return default
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            self._replace(name, raw, "is out of range", f"{default:g}")
            return default
        if whole and value != int(value):
            self._replace(name, raw, "is not a whole number", f"{default:g}")
            return default
        if cap is not None and value > cap:
            self._replace(name, raw, "is too many", f"{cap:g}")
            return cap
        return value

    def flag(self, name: str) -> bool:
        raw = self.get(name)
        if raw is None or raw.lower() in ("0", "false", "no", "off"):
            return False
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        self._replace(name, raw, "is not 1 or 0", "0")
        return False

    def check(self, name: str, value: str, allowed: tuple[str, ...], default: str) -> str:
        if value in allowed:
            return value
        self._replace(name, value, f"is not one of {', '.join(allowed)}", default)
        return default

    def choice(self, name: str, default: str, *, prefixes: tuple[str, ...]) -> str:
        raw = self.get(name)
        if raw is None:
            return default
        if raw.lower() in ("memory", "off") or raw.startswith(prefixes):
            return raw.lower() if raw.lower() in ("memory", "off") else raw
        self._replace(name, raw, "is not memory, off, sqlite:///..., redis://... or rediss://...", default)
        return default
