"""The failures a call can end in, as messages a person and an agent can act on."""

from __future__ import annotations

from dataclasses import dataclass

from grok_chat_mcp.config import TOKEN_VAR


class InvalidArguments(ValueError):
    """The tool's arguments break the contract; the message names the fields."""


@dataclass(eq=False)
class GrokError(Exception):
    """A failed call. ``str()`` gives the text returned to the client as a tool error."""

    category: str
    detail: str
    hint: str = ""
    status: int | None = None
    code: str | None = None
    trace_id: str | None = None
    attempts: int = 1

    def __str__(self) -> str:
        facts = [f"HTTP {self.status}"] if self.status is not None else []
        if self.code:
            facts.append(self.code)
        if self.attempts > 1:
            facts.append(f"after {self.attempts} attempts")
        head = f"{self.category}" + (f" ({', '.join(facts)})" if facts else "")
        lines = [f"{head}: {self.detail}"]
        if self.hint:
            lines.append(self.hint)
        if self.trace_id:
            lines.append(f"trace_id: {self.trace_id}")
        return "\n".join(lines)


def missing_token() -> GrokError:
    return GrokError(
        "Configuration error",
        f"no API token: {TOKEN_VAR} is not set.",
        f"Set {TOKEN_VAR} in the MCP client's `env` block for this server (or in a .env file in its "
        "working directory); get a token at https://platform.acedata.cloud.",
    )
