"""The README and docs/: short front page, links that resolve, JSON that parses, commands that work."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from grok_chat_mcp.config import ENV_VARS
from tests.conftest import SCRIPT

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
#: Files other work adds; links to them are checked apart, with a message that says so.
PENDING_FILES = {"docs/models.md"}
#: Flags other work adds to the command line.
PENDING_FLAGS = {"--models", "--json"}


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def fenced_blocks(markdown: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced code block."""
    return re.findall(r"^```(\w*)\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    heading = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    without_code = re.sub(r"^```.*?^```", "", text(path), flags=re.MULTILINE | re.DOTALL)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", without_code, flags=re.MULTILINE)}


def relative_links(path: Path) -> list[str]:
    without_code = re.sub(r"^```.*?^```", "", text(path), flags=re.MULTILINE | re.DOTALL)
    targets = re.findall(r"\]\(([^)\s]+)\)", without_code)
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # not https:, mailto:


def test_readme_is_a_front_page() -> None:
    size = len(text(README))
    assert size <= 10_500, f"README.md is {size} characters; move detail to docs/"


def unresolved_links() -> list[str]:
    problems = []
    for path in DOCS:
        for target in relative_links(path):
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            name = resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else str(resolved)
            if not resolved.exists():
                problems.append(f"{path.relative_to(ROOT)}: {target} (no {name})")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                problems.append(f"{path.relative_to(ROOT)}: {target} (no heading #{anchor})")
    return problems


def test_every_relative_link_resolves() -> None:
    problems = unresolved_links()
    settled = [p for p in problems if not any(f"(no {name})" in p for name in PENDING_FILES)]
    assert not settled, "\n".join(settled)
    pending = sorted(set(problems) - set(settled))
    assert not pending, "links to files other work adds (docs/models.md):\n" + "\n".join(pending)


def test_every_json_block_parses() -> None:
    for path in DOCS:
        for language, body in fenced_blocks(text(path)):
            if language == "json":
                try:
                    json.loads(body)
                except ValueError as exc:
                    pytest.fail(f"{path.relative_to(ROOT)}: a JSON block does not parse: {exc}\n{body}")


def parser_flags() -> set[str]:
    done = subprocess.run([SCRIPT, "--help"], capture_output=True, text=True, timeout=30, check=True)
    options = done.stdout.split("environment variables", 1)[0]
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", options))


def documented_flags() -> dict[str, set[str]]:
    """Every long flag given to ``grok-chat-mcp`` in a code block or code span, by file."""
    found: dict[str, set[str]] = {}
    for path in DOCS:
        markdown = text(path)
        code = [body.replace("\\\n", " ") for _, body in fenced_blocks(markdown)]
        prose = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
        code += re.findall(r"`([^`\n]+)`", prose)
        for snippet in code:
            for line in snippet.splitlines():
                if "@modelcontextprotocol/inspector" in line:
                    continue  # the Inspector's own flags follow the server command
                for match in re.finditer(r"(?:^|[\s/])grok-chat-mcp(?=\s|$)", line):
                    command = re.split(r"#|\||&&|;", line[match.end() :], maxsplit=1)[0]
                    flags = re.findall(r"(?<![\w-])--[a-z][a-z-]*", command)
                    found.setdefault(path.relative_to(ROOT).as_posix(), set()).update(flags)
    return found


def test_documented_command_lines_use_flags_the_parser_accepts() -> None:
    accepted = parser_flags()
    assert {"--check", "--live", "--transport"} <= accepted
    documented = documented_flags()
    assert "--check" in documented["README.md"]
    unknown = {f"{name}: {flag}" for name, flags in documented.items() for flag in flags - accepted}
    settled = sorted(u for u in unknown if u.split(": ")[1] not in PENDING_FLAGS)
    assert not settled, "flags the parser does not accept:\n" + "\n".join(settled)
    pending = sorted(unknown - set(settled))
    assert not pending, "flags the --models work adds, not in the parser yet:\n" + "\n".join(pending)


def test_readme_settings_table_lists_exactly_the_variables_the_server_reads() -> None:
    section = text(README).split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", section, flags=re.MULTILINE)
    assert len(listed) == len(set(listed)), "a variable is listed twice"
    read = [name for name, _, _ in ENV_VARS]
    only_readme, only_env_vars = sorted(set(listed) - set(read)), sorted(set(read) - set(listed))
    assert set(listed) == set(read), (
        "README's settings table and grok_chat_mcp.config.ENV_VARS differ "
        f"(only in README: {only_readme}; only in ENV_VARS: {only_env_vars}). "
        "ENV_VARS gains GROK_RETURN_AFTER and GROK_STORE with the conversations work; until that "
        "lands, this fails."
    )


def test_readme_test_command_is_the_one_ci_runs() -> None:
    blocks = fenced_blocks(text(README))
    (command,) = [body.strip() for language, body in blocks if language == "bash" and "pytest" in body]
    assert command in text(ROOT / ".ci" / "run").splitlines()


def test_docs_state_facts_plainly() -> None:
    for path in DOCS:
        lowered = text(path).lower()
        for phrase in ("on this machine", "before this change", "we now", "no longer"):
            assert phrase not in lowered, f"{path.relative_to(ROOT)}: '{phrase}'"
