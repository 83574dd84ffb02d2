"""Local image files for vision: read, checked by magic bytes, capped, sent as data: URLs."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
import respx
from mcp import Client
from mcp_types import TextContent

from grok_chat_mcp.errors import InvalidArguments
from grok_chat_mcp.images import image_type, inline_local_images, local_path
from grok_chat_mcp.tool import NAME as TOOL_NAME
from tests.conftest import completion

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
GIF = b"GIF89a" + b"\x00" * 32
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32  # xAI documents JPEG and PNG only
SECRET_TEXT = b"password=hunter2-do-not-upload\n"


def vision(url: str) -> dict[str, Any]:
    part = {"type": "image_url", "image_url": {"url": url, "detail": "low"}}
    return {
        "model": "grok-4",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "?"}, part]}],
    }


def sent_url(payload: dict[str, Any]) -> str:
    url: str = payload["messages"][0]["content"][1]["image_url"]["url"]
    return url


@pytest.mark.parametrize(("data", "mime"), [(PNG, "image/png"), (JPEG, "image/jpeg")])
async def test_images_become_data_urls(tmp_path: Path, data: bytes, mime: str) -> None:
    path = tmp_path / "picture.bin"  # the name does not matter, the bytes do
    path.write_bytes(data)
    original = vision(str(path))
    payload = await inline_local_images(original)
    assert sent_url(payload) == f"data:{mime};base64,{base64.b64encode(data).decode()}"
    assert payload["messages"][0]["content"][1]["image_url"]["detail"] == "low"
    assert sent_url(original) == str(path)  # the caller's arguments are not modified


async def test_file_urls_and_home_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a b.png").write_bytes(PNG)
    assert sent_url(await inline_local_images(vision((tmp_path / "a b.png").as_uri()))).startswith(
        "data:image/png"
    )
    monkeypatch.setenv("HOME", str(tmp_path))
    assert sent_url(await inline_local_images(vision("~/a b.png"))).startswith("data:image/png")
    assert local_path("file://localhost/tmp/x.png") == Path("/tmp/x.png")


@pytest.mark.parametrize("url", ["https://x.test/a.png", "http://x.test/a.png", "data:image/png;base64,AAAA"])
async def test_remote_urls_pass_through_untouched(url: str) -> None:
    payload = vision(url)
    assert await inline_local_images(payload) is payload


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.write_bytes(SECRET_TEXT), "is not a JPEG or PNG image"),
        (lambda p: p.write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'/>"), "is not a JPEG or PNG"),
        (lambda p: p.write_bytes(GIF), "is not a JPEG or PNG image"),
        (lambda p: p.write_bytes(WEBP), "is not a JPEG or PNG image"),
        (lambda p: p.mkdir(), "is not a regular file"),
        pytest.param(
            lambda p: os.mkfifo(p),
            "is not a regular file",
            marks=pytest.mark.skipif(sys.platform == "win32", reason="no FIFOs"),
        ),
        (lambda p: None, "no file exists at"),
    ],
)
async def test_refused_files_name_the_field(tmp_path: Path, make: Any, expected: str) -> None:
    path = tmp_path / "thing"
    make(path)
    with pytest.raises(InvalidArguments) as caught:
        await inline_local_images(vision(str(path)))
    message = str(caught.value)
    assert message.startswith("messages[0].content[1].image_url.url: ")
    assert expected in message
    assert "hunter2" not in message


async def test_size_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("grok_chat_mcp.images.MAX_IMAGE_BYTES", 1024)
    path = tmp_path / "big.png"
    path.write_bytes(PNG + b"\x00" * 2048)
    with pytest.raises(InvalidArguments, match="the limit is 20 MiB per image"):
        await inline_local_images(vision(str(path)))


async def test_total_of_inlined_images_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("grok_chat_mcp.images.MAX_TOTAL_IMAGE_BYTES", 1000)
    path = tmp_path / "a.png"
    path.write_bytes(PNG + b"\x00" * 260)  # 300 bytes: three fit, the fourth reference does not
    part = {"type": "image_url", "image_url": {"url": str(path)}}
    three = {"model": "grok-4", "messages": [{"role": "user", "content": [part] * 3}]}
    assert len((await inline_local_images(three))["messages"][0]["content"]) == 3
    twenty = {"model": "grok-4", "messages": [{"role": "user", "content": [part] * 20}]}  # a 1 KB request
    with pytest.raises(InvalidArguments) as caught:
        await inline_local_images(twenty)
    assert str(caught.value).startswith(
        "messages[0].content[3].image_url.url: the images of this call add up"
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (" /tmp/a.png", "starts or ends with white space"),
        ("ftp://host/a.png", "unsupported URL scheme 'ftp'"),
        ("relative/a.png", "is a relative path; give an absolute path"),
        ("~nosuchuser-xyz/a.png", "cannot find the home directory in ~nosuchuser-xyz/a.png"),
        ("/tmp/a\x00b.png", "the path contains a NUL byte"),
        ("/" + "d" * 100_000 + ".png", "..."),
    ],
)
async def test_unusable_image_references_get_one_short_line(url: str, expected: str) -> None:
    with pytest.raises(InvalidArguments) as caught:
        await inline_local_images(vision(url))
    message = str(caught.value)
    assert message.startswith("messages[0].content[1].image_url.url: ")
    assert expected in message
    assert len(message) < 300 and "\n" not in message


@pytest.mark.skipif(sys.platform == "win32", reason="no FIFOs")
async def test_swapping_the_file_for_a_fifo_cannot_hang_the_call(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "picture.png"
    link.symlink_to(fifo)  # what a swapped symlink points to when the file is opened
    with anyio.fail_after(5), pytest.raises(InvalidArguments, match="is not a regular file"):
        await inline_local_images(vision(str(link)))


async def test_remote_file_url_and_disallowed_local_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidArguments, match="must name a local file"):
        await inline_local_images(vision("file://server/share/a.png"))
    (tmp_path / "a.png").write_bytes(PNG)
    with pytest.raises(InvalidArguments, match="local files are not accepted here"):
        await inline_local_images(vision(str(tmp_path / "a.png")), allowed=False)


def test_magic_bytes() -> None:
    assert image_type(b"%PDF-1.7") is None
    assert image_type(b"RIFF\x00\x00\x00\x00WAVE") is None


async def test_non_image_bytes_never_leave_the_machine(
    mcp: Client, upstream: respx.MockRouter, tmp_path: Path
) -> None:
    route = upstream.post("/grok/chat/completions").respond(200, json=completion())
    secret = tmp_path / "notes.png"
    secret.write_bytes(SECRET_TEXT)
    result = await mcp.call_tool(TOOL_NAME, vision(str(secret)))
    assert result.is_error
    block = result.content[0]
    assert isinstance(block, TextContent)
    assert "is not a JPEG or PNG image; nothing was sent" in block.text
    assert not route.called


async def test_local_png_reaches_upstream_as_data_url(
    mcp: Client, upstream: respx.MockRouter, tmp_path: Path
) -> None:
    route = upstream.post("/grok/chat/completions").respond(200, json=completion())
    (tmp_path / "chart.png").write_bytes(PNG)
    result = await mcp.call_tool(TOOL_NAME, vision(str(tmp_path / "chart.png")))
    assert not result.is_error
    sent = json.loads(route.calls.last.request.content)
    assert sent_url(sent) == "data:image/png;base64," + base64.b64encode(PNG).decode()
