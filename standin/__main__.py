"""``python -m standin``: the stand-in upstream on 127.0.0.1, to try grok-chat-mcp without a token.

Run it from a clone (the stand-in is not in the wheel). Every answer is canned ("pong"); nothing
reaches AceDataCloud and nothing is billed.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading

from standin.upstream import Upstream

DEFAULT_PORT = 8765


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted, after printing the settings that point the server here."""
    parser = argparse.ArgumentParser(
        prog="python -m standin",
        description="A stand-in for AceDataCloud's API on 127.0.0.1, for trying grok-chat-mcp "
        "without a token. Its answers are canned (always 'pong'); it is not Grok.",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"default: {DEFAULT_PORT}; 0 picks a free one"
    )
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        try:
            upstream = stack.enter_context(Upstream(port=args.port, record=False))
        except OSError as exc:
            parser.exit(1, f"cannot listen on 127.0.0.1:{args.port} ({exc.strerror}); try --port 0\n")
        sys.stdout.write(
            f"stand-in upstream (canned answers, not Grok) at {upstream.url('ok')}\n"
            f"point the server at it: ACEDATACLOUD_API_BASE_URL={upstream.url('ok')} "
            "ACEDATACLOUD_API_TOKEN=demo\n"
        )
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
