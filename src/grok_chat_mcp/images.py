"""Local images for vision: a path or ``file://`` URL becomes a ``data:`` URL, if it really is an image.

xAI documents JPEG and PNG input of at most 20 MiB per image (docs.x.ai, image understanding), so
those are the only files read. A file is opened once, without blocking (a FIFO or device cannot
stall the call), and checked through the opened descriptor, so swapping the path in between gains
nothing.
"""

from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import anyio.to_thread

from grok_chat_mcp.errors import InvalidArguments

#: xAI's limit for one image.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
#: Bytes of local files inlined into one call, all images together (each reference counts).
MAX_TOTAL_IMAGE_BYTES = 32 * 1024 * 1024
ACCEPTED = "JPEG or PNG"
_REMOTE = ("http://", "https://", "data:")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SHOWN = 80


def image_type(head: bytes) -> str | None:
    """The MIME type of a PNG or JPEG file, from its first bytes; None for anything else."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return None


def shown(path: object) -> str:
    """A path as echoed in a message: at most about 80 characters."""
    text = str(path)
    return text if len(text) <= _SHOWN else f"{text[:40]}...{text[-37:]}"


def local_path(url: str) -> Path | None:
    """The file an image URL names, or None for ``http(s)://`` and ``data:`` URLs (sent as they are).

    Raises ValueError, with the reason, for anything else that cannot name a local image: other URL
    schemes, surrounding spaces, relative paths (they would resolve against the server's working
    directory, which the caller cannot see), unknown ``~user`` homes, NUL bytes.
    """
    lowered = url.lower()
    if lowered.startswith(_REMOTE):
        return None
    if url != url.strip():
        raise ValueError("the URL starts or ends with white space; send it without")
    if "\x00" in url:
        raise ValueError("the path contains a NUL byte")
    scheme = _SCHEME.match(url)
    if scheme and scheme.group(1).lower() != "file":
        raise ValueError(
            f"unsupported URL scheme '{shown(scheme.group(1))}'; "
            "send an https:// or data: URL, or a local path"
        )
    if lowered.startswith("file://"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ValueError("file:// URLs must name a local file (file:///path)")
        path = Path(url2pathname(parts.path))  # also right for file:///C:/... on Windows
    else:
        try:
            path = Path(url).expanduser()
        except RuntimeError:  # ~nosuchuser
            raise ValueError(f"cannot find the home directory in {shown(url)}") from None
    if not path.is_absolute():
        raise ValueError(
            f"{shown(url)} is a relative path; give an absolute path (or ~/...), since the server's working "
            "directory is not yours"
        )
    return path


def read_as_data_url(path: Path, field: str, budget: int = MAX_IMAGE_BYTES) -> str:
    """Read ``path`` and return it as a ``data:`` URL; refuse anything that is not a small image.

    ``budget`` is what the call may still inline; the file is refused if it is larger.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InvalidArguments(
            f"{field}: not an http(s) or data: URL, and no file exists at {shown(path)}"
        ) from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise InvalidArguments(f"{field}: cannot read {shown(path)}: {reason}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidArguments(f"{field}: {shown(path)} is not a regular file")
        limit = min(MAX_IMAGE_BYTES, budget)
        if info.st_size > MAX_IMAGE_BYTES:
            raise InvalidArguments(
                f"{field}: {shown(path)} is {info.st_size / 2**20:.1f} MiB; the limit is 20 MiB per image"
            )
        if info.st_size > limit:
            raise InvalidArguments(
                f"{field}: the images of this call add up to more than {MAX_TOTAL_IMAGE_BYTES // 2**20} MiB; "
                "send fewer or smaller images"
            )
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(limit + 1)
    except OSError as exc:
        raise InvalidArguments(
            f"{field}: cannot read {shown(path)}: {exc.strerror or type(exc).__name__}"
        ) from None
    finally:
        os.close(fd)
    if len(data) > limit:  # the file grew while being read
        raise InvalidArguments(f"{field}: {shown(path)} is larger than the limit")
    mime = image_type(data[:16])
    if mime is None:
        raise InvalidArguments(f"{field}: {shown(path)} is not a {ACCEPTED} image; nothing was sent")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


async def inline_local_images(payload: dict[str, Any], *, allowed: bool = True) -> dict[str, Any]:
    """Replace local image references in ``messages`` by ``data:`` URLs; the input is not modified.

    Raises :class:`InvalidArguments` naming the field when a file is missing, too large, not an
    image, when the call's images add up to more than :data:`MAX_TOTAL_IMAGE_BYTES`, or when local
    files are not ``allowed`` (remote transports).
    """
    messages = payload.get("messages")
    if not isinstance(messages, list):
        return payload
    changed: dict[int, dict[str, Any]] = {}
    budget = MAX_TOTAL_IMAGE_BYTES
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
            data_url = await anyio.to_thread.run_sync(read_as_data_url, path, field, budget)
            budget -= (len(data_url) - data_url.index(",") - 1) * 3 // 4
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
