"""Settings, read from the environment and from a ``.env`` file in the working directory."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

TOKEN_VAR = "ACEDATACLOUD_API_TOKEN"
DEFAULT_BASE_URL = "https://api.acedata.cloud"
#: Read timeout: a non-streamed reasoning answer (grok-4, grok-4.5) sends nothing until it is done,
#: which can take many minutes; xAI's own examples raise their client timeout to 3600 s for these.
DEFAULT_TIMEOUT = 900.0
#: The whole call, every attempt and wait included (an endless or trickling stream ends here).
DEFAULT_CALL_TIMEOUT = 1800.0
DEFAULT_MAX_RETRIES = 2
MAX_RETRIES_CAP = 10
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: GROK_EVENT_LOOP: uvloop where installed (``auto``), or either loop by name.
EVENT_LOOPS = ("auto", "uvloop", "asyncio")

#: Every variable the server reads, with its default and meaning (shown by ``--help``).
ENV_VARS: tuple[tuple[str, str, str], ...] = (
    (TOKEN_VAR, "(none)", "Bearer token for AceDataCloud; calls fail with a clear error without it"),
    ("ACEDATACLOUD_API_BASE_URL", DEFAULT_BASE_URL, "API base URL"),
    ("GROK_REQUEST_TIMEOUT", "900", "seconds to wait for upstream data (read timeout)"),
    ("GROK_CALL_TIMEOUT", "1800", "seconds one call may take in all, retries included (deadline)"),
    ("GROK_MAX_RETRIES", "2", "retries on 429/500/502/503 and connection failures (0 disables)"),
    ("LOG_LEVEL", "INFO", "stderr log level: DEBUG, INFO, WARNING, ERROR"),
    ("GROK_EVENT_LOOP", "auto", "auto (uvloop where installed), uvloop or asyncio"),
)


@dataclass(frozen=True)
class Settings:
    """Effective configuration of one server process."""

    api_token: str | None = field(default=None, repr=False)
    token_source: str = "unset"
    base_url: str = DEFAULT_BASE_URL
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = 10.0
    call_timeout: float = DEFAULT_CALL_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    log_level: str = "INFO"
    #: ``auto`` (uvloop where installed), ``uvloop`` or ``asyncio``.
    event_loop: str = "auto"
    #: Problems found while reading the settings; each fell back to its default.
    warnings: tuple[str, ...] = ()

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/grok/chat/completions"


def load_settings(environ: Mapping[str, str] | None = None, env_file: Path | None = None) -> Settings:
    """Read settings; the real environment wins over ``.env``. Never raises on bad values."""
    environ = os.environ if environ is None else environ
    env_file = Path.cwd() / ".env" if env_file is None else env_file
    file_values: dict[str, str] = {}
    if env_file.is_file():
        from dotenv import dotenv_values  # only when there is a file to read (start-up time)

        file_values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}

    def get(name: str) -> tuple[str | None, str]:
        value = environ.get(name)
        if value is not None and value.strip():
            return value.strip(), "environment"
        value = file_values.get(name)
        if value is not None and value.strip():
            return value.strip(), str(env_file)
        return None, "unset"

    warnings: list[str] = []
    token, token_source = get(TOKEN_VAR)

    base_url = get("ACEDATACLOUD_API_BASE_URL")[0] or DEFAULT_BASE_URL
    if not base_url.startswith(("http://", "https://")):
        warnings.append(
            f"ACEDATACLOUD_API_BASE_URL={base_url!r} is not an http(s) URL; using {DEFAULT_BASE_URL}"
        )
        base_url = DEFAULT_BASE_URL

    timeout = _number(get("GROK_REQUEST_TIMEOUT")[0], "GROK_REQUEST_TIMEOUT", DEFAULT_TIMEOUT, warnings)
    call_timeout = _number(get("GROK_CALL_TIMEOUT")[0], "GROK_CALL_TIMEOUT", DEFAULT_CALL_TIMEOUT, warnings)
    retries = _number(get("GROK_MAX_RETRIES")[0], "GROK_MAX_RETRIES", DEFAULT_MAX_RETRIES, warnings)
    if retries != int(retries):
        warnings.append(f"GROK_MAX_RETRIES={retries} is not a whole number; using {DEFAULT_MAX_RETRIES}")
        retries = DEFAULT_MAX_RETRIES
    if retries > MAX_RETRIES_CAP:
        warnings.append(f"GROK_MAX_RETRIES={int(retries)} is too many; using {MAX_RETRIES_CAP}")
        retries = MAX_RETRIES_CAP

    level = (get("LOG_LEVEL")[0] or "INFO").upper()
    if level == "WARN":
        level = "WARNING"
    if level not in LOG_LEVELS:
        warnings.append(f"LOG_LEVEL={level!r} is not one of {', '.join(LOG_LEVELS)}; using INFO")
        level = "INFO"

    event_loop = (get("GROK_EVENT_LOOP")[0] or "auto").lower()
    if event_loop not in EVENT_LOOPS:
        warnings.append(f"GROK_EVENT_LOOP={event_loop!r} is not one of {', '.join(EVENT_LOOPS)}; using auto")
        event_loop = "auto"

    return Settings(
        api_token=token,
        token_source=token_source,
        base_url=base_url.rstrip("/"),
        timeout=timeout,
        connect_timeout=min(10.0, timeout),
        call_timeout=call_timeout,
        max_retries=int(retries),
        log_level=level,
        event_loop=event_loop,
        warnings=tuple(warnings),
    )


def _number(raw: str | None, name: str, default: float, warnings: list[str]) -> float:
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        warnings.append(f"{name}={raw!r} is not a number; using {default:g}")
        return default
    if not math.isfinite(value) or value < 0 or (value == 0 and name.endswith("_TIMEOUT")):
        warnings.append(f"{name}={raw!r} is out of range; using {default:g}")
        return default
    return value
