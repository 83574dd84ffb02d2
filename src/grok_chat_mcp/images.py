"""Local images for vision: a path or ``file://`` URL becomes a ``data:`` URL, if it really is an image."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import anyio.to_thread

from grok_chat_mcp.schema import InvalidArguments

#: xAI's limit for one image.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
_REMOTE = ("http://", "https://", "data:")


def image_type(head: bytes) -> str | None:
    """The MIME type of a PNG, JPEG, GIF or WebP file, from its first bytes; None for anything else."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def local_path(url: str) -> Path | None:
    """The file an image URL names, or None for ``http(s)://`` and ``data:`` URLs (sent as they are)."""
    if url.lower().startswith(_REMOTE):
        return None
    if url.lower().startswith("file://"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ValueError("file:// URLs must name a local file (file:///path)")
        return Path(url2pathname(parts.path))  # also right for file:///C:/... on Windows
    return Path(url).expanduser()


def read_as_data_url(path: Path, field: str) -> str:
    """Read ``path`` and return it as a ``data:`` URL; refuse anything that is not a small image."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise InvalidArguments(f"{field}: {path} is not a file")
        if size > MAX_IMAGE_BYTES:
            raise InvalidArguments(f"{field}: {path} is {size / 2**20:.1f} MiB; the limit is 20 MiB")
        with path.open("rb") as file:
            data = file.read(MAX_IMAGE_BYTES + 1)
    except FileNotFoundError:
        raise InvalidArguments(
            f"{field}: not an http(s) or data: URL, and no file exists at {path}"
        ) from None
    except OSError as exc:
        raise InvalidArguments(f"{field}: cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    mime = image_type(data[:16])
    if mime is None:
        raise InvalidArguments(f"{field}: {path} is not a PNG, JPEG, GIF or WebP image; nothing was sent")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


async def inline_local_images(payload: dict[str, Any], *, allowed: bool = True) -> dict[str, Any]:
    """Replace local image references in ``messages`` by ``data:`` URLs; the input is not modified.

    Raises :class:`InvalidArguments` naming the field when a file is missing, too large, not an
    image, or when local files are not ``allowed`` (remote transports).
    """
    messages = payload.get("messages")
    if not isinstance(messages, list):
        return payload
    changed: dict[int, dict[str, Any]] = {}
    for m, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        parts = list(content)
        for p, part in enumerate(content):
            url = _image_url(part)
            field = f"messages[{m}].content[{p}].image_url.url"
            try:
                path = local_path(url) if url is not None else None
            except ValueError as exc:
                raise InvalidArguments(f"{field}: {exc}") from None
            if path is None:
                continue
            if not allowed:
                raise InvalidArguments(
                    f"{field}: local files are not accepted here; send an https:// or data: URL"
                )
            data_url = await anyio.to_thread.run_sync(read_as_data_url, path, field)
            parts[p] = {**part, "image_url": {**part["image_url"], "url": data_url}}
            changed[m] = {**message, "content": parts}
    if not changed:
        return payload
    return {**payload, "messages": [changed.get(i, message) for i, message in enumerate(messages)]}


def _image_url(part: Any) -> str | None:
    if not isinstance(part, dict) or part.get("type") != "image_url":
        return None
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else None
    return url if isinstance(url, str) else None
