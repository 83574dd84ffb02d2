"""Build the Claude Desktop bundle (``.mcpb``) from this checkout.

    python bundle/build.py                # dist/grok-chat-mcp-<version>.mcpb
    python bundle/build.py --out DIR

The bundle uses MCPB's ``uv`` server type: it carries the source, ``pyproject.toml`` and
``uv.lock``, and the host (Claude Desktop) provides Python and runs ``uv run --frozen --directory
<bundle>``, which installs exactly the versions in ``uv.lock``. That is the repository's one lock,
the one CI installs from (``uv lock`` at the root regenerates it; docs/development.md); a test
fails while it is out of step with ``pyproject.toml``. The manifest is validated and the bundle
packed with Anthropic's own ``mcpb`` tool: ``$MCPB``, the copy CI installs in
``.ci/node_modules``, or ``npx -y @anthropic-ai/mcpb@2``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MCPB_VERSION = "2.1.2"
#: What the bundle carries besides the manifest and the lock: what uv needs to build and run the package.
CONTENTS = ("pyproject.toml", "README.md", "LICENSE", "src")
#: The pinned dependency versions the host's uv installs (``uv run --frozen`` in the manifest).
LOCK = ROOT / "uv.lock"


def mcpb_command() -> list[str]:
    """How to run Anthropic's ``mcpb`` CLI here."""
    local = ROOT / ".ci" / "node_modules" / ".bin" / "mcpb"
    if os.environ.get("MCPB"):
        return [os.environ["MCPB"]]
    if local.exists():
        return [str(local)]
    npx = shutil.which("npx")
    if npx is None:
        raise SystemExit("mcpb not found: install Node.js (npx) or set MCPB to the mcpb binary")
    return [npx, "-y", f"@anthropic-ai/mcpb@{MCPB_VERSION}"]


def version() -> str:
    namespace: dict[str, str] = {}
    exec((ROOT / "src" / "grok_chat_mcp" / "__init__.py").read_text(), namespace)  # our own file
    return namespace["__version__"]


def stage(staging: Path) -> None:
    """Lay out the bundle's files in ``staging``."""
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    manifest = json.loads((ROOT / "bundle" / "manifest.json").read_text())
    if manifest["version"] != version():
        raise SystemExit(f"bundle/manifest.json says {manifest['version']}, the package {version()}")
    shutil.copy(ROOT / "bundle" / "manifest.json", staging / "manifest.json")
    shutil.copy(ROOT / "bundle" / "icon.png", staging / "icon.png")
    if LOCK.exists():
        shutil.copy(LOCK, staging / "uv.lock")
    for name in CONTENTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, staging / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(source, staging / name)


def build(out: Path) -> Path:
    """Stage, validate and pack; return the ``.mcpb`` path."""
    if not LOCK.exists():
        raise SystemExit(f"{LOCK} is missing: run uv lock")
    staging = out / "bundle-staging"
    stage(staging)
    mcpb = mcpb_command()
    subprocess.run([*mcpb, "validate", str(staging / "manifest.json")], check=True, stdout=sys.stderr)
    target = out / f"grok-chat-mcp-{version()}.mcpb"
    target.unlink(missing_ok=True)
    subprocess.run([*mcpb, "pack", str(staging), str(target)], check=True, stdout=sys.stderr)
    shutil.rmtree(staging)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output directory (default: dist)")
    args = parser.parse_args()
    print(build(args.out.resolve()))


if __name__ == "__main__":
    main()
