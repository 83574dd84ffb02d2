"""The tool's arguments, validated: what a call asks for, before anything is adapted or sent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from grok_chat_mcp.schema import parse_arguments


@dataclass(frozen=True, slots=True)
class Arguments:
    """A call's validated arguments. ``payload`` holds the caller's own values, as given."""

    model: str
    stream: bool
    messages: tuple[Mapping[str, Any], ...]
    conversation_id: str | None
    payload: Mapping[str, Any]

    @property
    def collects(self) -> bool:
        """Only a conversation_id: collect that conversation's pending or last answer."""
        return self.conversation_id is not None and not self.messages


def parse(raw: Mapping[str, Any] | None) -> Arguments:
    """Validate the tool's arguments; raises ``InvalidArguments`` with one line per problem."""
    request, payload = parse_arguments(raw)
    conversation_id = payload.pop("conversation_id", None)
    return Arguments(
        model=request.model,
        stream=request.stream,
        messages=tuple(payload.get("messages") or ()),
        conversation_id=conversation_id,
        payload=payload,
    )
