"""The call pipeline: validated arguments in, one frozen upstream request out.

Model capabilities, local images and adaptation run once, in that order, here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from grok_chat_mcp.arguments import Arguments
from grok_chat_mcp.capabilities import Table
from grok_chat_mcp.errors import InvalidArguments
from grok_chat_mcp.images import inline_local_images


@dataclass(frozen=True, slots=True)
class GrokRequest:
    """One upstream call, ready to send."""

    model: str
    stream: bool
    #: The JSON body: the caller's values (history first), minus what the model rejects.
    payload: Mapping[str, Any]
    #: What was adapted, one short sentence each (the result's notes).
    notes: tuple[str, ...] = ()
    #: The messages this call adds to its conversation (images inlined).
    new_messages: tuple[Mapping[str, Any], ...] = field(default=())

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> GrokRequest:
        """A request for a payload as it is (checks and tests)."""
        return cls(
            str(payload.get("model", "")), bool(payload.get("stream")), MappingProxyType(dict(payload))
        )

    def without(self, argument: str, note: str) -> GrokRequest:
        """The same request without ``argument``, with a note saying why."""
        payload = {key: value for key, value in self.payload.items() if key != argument}
        return replace(self, payload=MappingProxyType(payload), notes=(*self.notes, note))


async def build(
    arguments: Arguments,
    history: Sequence[Mapping[str, Any]],
    *,
    table: Table,
    local_images: bool,
) -> GrokRequest:
    """The upstream request for ``arguments`` after ``history``.

    Raises :class:`InvalidArguments` for what no model could take (a retired model, images for a
    text-only one, a local file that is not an image).
    """
    payload = dict(arguments.payload)
    refused = table.refusal(arguments.model, payload)
    if refused is not None:
        raise InvalidArguments(refused)
    inlined = await inline_local_images({"messages": list(arguments.messages)}, allowed=local_images)
    new_messages = tuple(inlined["messages"])
    payload["messages"] = [*history, *new_messages]
    payload, notes = table.adapt(arguments.model, payload)
    return GrokRequest(
        model=arguments.model,
        stream=arguments.stream,
        payload=MappingProxyType(payload),
        notes=tuple(notes),
        new_messages=new_messages,
    )
