"""The README and docs/: short front page, links that resolve, JSON that parses, commands that work."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from standin.__main__ import DEFAULT_PORT
from standin.upstream import Upstream

from grok_chat_mcp.capabilities import CURRENT_MODELS, DEFAULT_MODEL
from grok_chat_mcp.config import ENV_VARS
from tests.conftest import SCRIPT, TOKEN

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


def test_readme_commands_call_the_installed_scripts() -> None:
    """After the README's install the scripts are in .venv/bin, not on PATH: every command says so."""
    readme = text(README)
    code = [body for language, body in fenced_blocks(readme) if language == "bash"]
    prose = re.sub(r"^```.*?^```", "", readme, flags=re.MULTILINE | re.DOTALL)
    code += [span for span in re.findall(r"`([^`\n]+)`", prose) if " " in span]  # a command, not a name
    commands = [
        match.group(1)
        for snippet in code
        for match in re.finditer(r"(?:^|&&|;|\|)\s*(?:\w+=\S+\s+)*(\S+)", snippet, flags=re.MULTILINE)
    ]
    assert ".venv/bin/grok-chat-mcp" in commands and ".venv/bin/pip" in commands
    for command in commands:
        if command.rsplit("/", 1)[-1] in ("grok-chat-mcp", "pip", "python"):
            assert command.startswith(".venv/bin/"), f"README runs {command!r} outside the virtualenv"


def test_readme_names_the_models_the_server_serves() -> None:
    line = next(line for line in text(README).splitlines() if line.startswith("Models: "))
    named = re.findall(r"grok-[\w.-]*\w", line.split("(", 1)[0])
    assert named == list(CURRENT_MODELS)
    assert f"`{DEFAULT_MODEL}` is the default" in line


def test_docs_and_tests_run_the_pinned_inspector() -> None:
    """One Inspector version, the one .ci/package.json pins, in the docs and in the tests."""
    package = json.loads(text(ROOT / ".ci" / "package.json"))
    pinned = package["devDependencies"]["@modelcontextprotocol/inspector"]
    files = [*DOCS, *(p for p in sorted((ROOT / "tests").rglob("*.py")) if p != Path(__file__))]
    uses = [
        (p, v)
        for p in files
        for v in re.findall(r"@modelcontextprotocol/inspector(?![\"'])(@[\w.{}]*)?", text(p))
    ]
    assert any(path == README for path, _ in uses)
    unpinned = [
        f"{p.relative_to(ROOT)}: {v or 'no version'}"
        for p, v in uses
        if v not in (f"@{pinned}", "@{INSPECTOR}")
    ]
    assert not unpinned, f"the Inspector is pinned at {pinned}:\n" + "\n".join(unpinned)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Bash: wait up to 30 s for a port to accept connections.
WAIT_FOR_PORT = "for _ in $(seq 300); do (: >/dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; sleep 0.1; done"


def readme_script(port: int, live_url: str) -> str:
    """The README's shell blocks in order, then the commands in its prose, as one bash script, with
    what only a test must change: the project is copied instead of cloned, the stand-in gets a free
    port, the follow-up uses the id the first call printed, and what needs a real token goes to a
    second stand-in."""
    blocks = [body for language, body in fenced_blocks(text(README)) if language == "bash"]
    tests_block = [b for b in blocks if "pytest" in b]
    assert len(tests_block) == 1  # CI runs it verbatim (test_readme_test_command_is_the_one_ci_runs)
    assert f"127.0.0.1:{DEFAULT_PORT}/ok" in text(README)
    lines = []
    calls = 0
    for line in "\n".join(b for b in blocks if b not in tests_block).replace("\\\n", " ").splitlines():
        line = re.sub(r"git clone https://github\.com/\S+", "true", line)
        line = line.replace(f"127.0.0.1:{DEFAULT_PORT}", f"127.0.0.1:{port}")
        line = re.sub(r"conv_[\w-]{24}", "$CONV", line)
        if "your-token" in line:
            line = f"ACEDATACLOUD_API_BASE_URL={live_url} " + line.replace("your-token", TOKEN)
        if "-m standin &" in line:
            line = line.replace("-m standin &", f"-m standin --port {port} &")
            line += "\n" + WAIT_FOR_PORT.format(port=port)
        if "@modelcontextprotocol/inspector" in line:
            calls += 1
            line += f" > call{calls}.json"
            if calls == 1:
                line += "\nCONV=$(.venv/bin/python -c \"import json; print(json.load(open('call1.json'))"
                line += "['structuredContent']['conversation_id'])\")"
        if "--check --live" in line:
            line += " > live.txt"
        lines.append(line)
    assert calls == 2, "the README's first call and follow-up, through the Inspector"
    prose = re.sub(r"^```.*?^```", "", text(README), flags=re.MULTILINE | re.DOTALL)
    inline = [span for span in re.findall(r"`([^`\n]+)`", prose) if span.startswith(".venv/bin/")]
    assert {".venv/bin/grok-chat-mcp --help", ".venv/bin/grok-chat-mcp --check"} <= set(inline)
    for span in dict.fromkeys(inline):  # each once, as a user with a token would run it
        lines.append(f"ACEDATACLOUD_API_TOKEN={TOKEN} ACEDATACLOUD_API_BASE_URL={live_url} {span} >/dev/null")
    return "set -euo pipefail\n" + "\n".join(lines) + "\n"


@pytest.mark.skipif(shutil.which("npx") is None, reason="no npx (Node.js)")
def test_readme_runs_as_written(tmp_path: Path) -> None:
    """A newcomer without a token: install, the model list, a first answer and a follow-up through
    the Inspector with no store setting (servers it starts per call), then the live check."""
    clone = tmp_path / "grok-chat-mcp"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True,
    )  # fmt: skip
    for name in listed.stdout.decode().split("\0"):
        source = ROOT / name
        if name and source.is_file() and not source.is_symlink():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACEDATACLOUD_", "GROK_", "VIRTUAL_ENV"))}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    with Upstream() as live:
        script = readme_script(free_port(), live.url("ok"))
        (tmp_path / "readme.sh").write_text(script)
        done = subprocess.run(
            ["bash", str(tmp_path / "readme.sh")],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert done.returncode == 0, f"{script}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    first, follow_up = (json.loads((clone / f"call{n}.json").read_text()) for n in (1, 2))
    assert first["structuredContent"]["result"]["choices"][0]["message"]["content"] == "pong"
    assert not follow_up["isError"], follow_up["content"][0]["text"]
    assert follow_up["structuredContent"]["conversation_id"] == first["structuredContent"]["conversation_id"]
    assert (tmp_path / "state" / "grok-chat-mcp" / "conversations.db").is_file()
    assert "ok: the token works and grok-4 answered" in (clone / "live.txt").read_text()
    assert re.search(r"^grok-4.7 +served", done.stdout, flags=re.MULTILINE)  # --models printed its table


#: Variables other work adds to config.ENV_VARS; .env.example already describes them.
PENDING_VARIABLES = {"GROK_BUDGET", "GROK_CONFIRM_CALLS", "GROK_OAUTH_KEY"}


def test_env_example_lists_every_variable_the_server_reads_with_its_default() -> None:
    example = dict(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]+)=(.*)$", text(ROOT / ".env.example"), re.MULTILINE))
    read = {name: default for name, default, _ in ENV_VARS}
    missing = sorted(set(read) - set(example))
    assert not missing, f".env.example lacks {missing} (config.ENV_VARS)"
    unknown = sorted(set(example) - set(read) - PENDING_VARIABLES)
    assert not unknown, f".env.example names {unknown}, which the server does not read"
    for name, value in example.items():
        if value and name in read:
            assert value == read[name], f".env.example: {name}={value}, but the default is {read[name]}"
