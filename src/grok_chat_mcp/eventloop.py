"""Which event loop runs the server: uvloop where it is installed (Linux and macOS), else asyncio.

What uvloop buys is measured in docs/benchmarks.md; ``GROK_EVENT_LOOP=asyncio`` turns it off.
"""

from __future__ import annotations

import logging
from typing import Literal

logger = logging.getLogger(__name__)


def choose(preference: str) -> Literal["uvloop", "asyncio"]:
    """``"uvloop"`` or ``"asyncio"``: the preference (``GROK_EVENT_LOOP``), as far as installed."""
    if preference == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401 - imported here, so that a broken install falls back
    except ImportError:
        if preference == "uvloop":
            logger.warning("GROK_EVENT_LOOP=uvloop, but uvloop is not installed here; using asyncio")
        return "asyncio"
    return "uvloop"
