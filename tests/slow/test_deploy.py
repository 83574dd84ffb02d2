"""The files users and maintainers ship with, checked by the tools that consume them.

actionlint and zizmor (workflows), hadolint (Dockerfile) and kubernetes-validate (Kubernetes
schemas, offline) come from the ``lint`` extra, which ``.ci/run`` installs; each test skips where
its tool is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grok_chat_mcp import __version__

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[lint]')")
    return found


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)


def test_workflows_pass_actionlint() -> None:
    done = run(tool("actionlint"), *map(str, WORKFLOWS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflows_pass_zizmor() -> None:
    done = run(tool("zizmor"), "--offline", str(ROOT / ".github" / "workflows"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflows_pin_actions_by_commit_and_grant_least_privilege() -> None:
    assert {path.name for path in WORKFLOWS} == {"ci.yml", "release.yml", "newest.yml"}
    for path in WORKFLOWS:
        text = path.read_text()
        assert re.search(r"^permissions: \{\}$", text, re.MULTILINE), f"{path.name}: default permissions"
        for action in re.findall(r"uses: (\S+)", text):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), f"{path.name}: {action} not pinned"
    release = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    assert "id-token: write" in release and "pypa/gh-action-pypi-publish" in release
    assert "mcp-publisher publish" in release and "bundle/build.py" in release
    newest = (ROOT / ".github" / "workflows" / "newest.yml").read_text()
    assert "schedule:" in newest and "bash .ci/run --newest" in newest  # CI against the newest releases


def release_jobs() -> dict[str, str]:
    """release.yml's jobs, each as its text."""
    text = (ROOT / ".github" / "workflows" / "release.yml").read_text().split("\njobs:\n", 1)[1]
    parts = re.split(r"^  ([\w-]+):\n", text, flags=re.MULTILINE)[1:]
    return dict(zip(parts[::2], parts[1::2], strict=True))


def test_release_pushes_the_image_the_kubernetes_example_runs() -> None:
    jobs = release_jobs()
    pushing = [name for name, text in jobs.items() if "packages: write" in text]
    assert pushing == ["container"]  # least privilege: only the job that pushes may write packages
    job = jobs["container"]
    assert "docker build -f deploy/docker/Dockerfile" in job and 'docker push "$image"' in job
    assert 'image="ghcr.io/${REPO,,}:${TAG#v}"' in job
    server = json.loads((ROOT / "server.json").read_text())
    owner = server["name"].split("/")[0].removeprefix("io.github.")
    manifest = (ROOT / "deploy" / "kubernetes" / "grok-chat-mcp.yaml").read_text()
    ours, *others = re.findall(r"image: (\S+)", manifest)
    assert ours == f"ghcr.io/{owner}/grok-chat-mcp:{__version__}", "the image release.yml pushes"
    assert others == ["redis:7.4.1-alpine"]  # the shared conversation store, pinned


def test_dockerfile_passes_hadolint() -> None:
    done = run(tool("hadolint"), str(ROOT / "deploy" / "docker" / "Dockerfile"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_runs_the_http_transport_as_a_user_without_a_token() -> None:
    text = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:\d+\.\d+\.\d+-slim-\w+", text, re.MULTILINE)  # a pinned release
    assert re.search(r"^USER 10001$", text, re.MULTILINE)
    assert "HEALTHCHECK" in text and "/health" in text
    assert '"--transport", "http", "--host", "0.0.0.0"' in text
    assert "ACEDATACLOUD_API_TOKEN=" not in text and "ENV ACEDATACLOUD" not in text


def test_kubernetes_example_passes_the_kubernetes_schemas() -> None:
    manifest = ROOT / "deploy" / "kubernetes" / "grok-chat-mcp.yaml"
    done = run(tool("kubernetes-validate"), "--strict", str(manifest))
    assert done.returncode == 0 and "ERROR" not in done.stdout + done.stderr, done.stdout + done.stderr
    text = manifest.read_text()
    assert "replicas: 3" in text and "path: /ready" in text and "path: /health" in text
    assert "limits:" in text and "runAsNonRoot: true" in text


def test_server_json_fits_the_registry_schema() -> None:
    """The published schema's rules (static.modelcontextprotocol.io, 2025-12-11) that apply here.

    The schema file itself is not kept in this repository; the release workflow validates against
    the published one with check-jsonschema before publishing.
    """
    server = json.loads((ROOT / "server.json").read_text())
    assert server["$schema"] == "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
    assert re.fullmatch(r"[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+", server["name"]) and 3 <= len(server["name"]) <= 200
    assert 1 <= len(server["description"]) <= 100
    assert server["version"] == __version__
    for package in server["packages"]:
        assert {"registryType", "identifier", "version", "transport"} <= package.keys()
        assert package["version"] not in ("", "latest") and not re.match(r"[\^~>=<]", package["version"])
        assert package["transport"]["type"] in ("stdio", "streamable-http", "sse")
        for variable in package["environmentVariables"]:
            assert isinstance(variable["name"], str) and variable["name"]
            assert variable.get("format", "string") in ("string", "number", "boolean", "filepath")
            assert all(isinstance(choice, str) for choice in variable.get("choices", []))
            assert isinstance(variable.get("default", ""), str)
    for remote in server["remotes"]:  # templates: {host} is the team server's (2025-12-11 variables)
        assert remote["type"] == "streamable-http" and remote["url"].startswith("https://")
        names = set(re.findall(r"\{(\w+)\}", remote["url"]))
        assert names == set(remote["variables"]) == {"host"}
        for header in remote.get("headers", []):
            assert header["isSecret"] is True
            assert set(re.findall(r"\{(\w+)\}", header["value"])) == set(header["variables"])


def test_kubernetes_team_server_matches_the_docs() -> None:
    """The example signs users in, keeps the key in a Secret, and gives Redis room above the store's bound."""
    from grok_chat_mcp.store import Limits

    text = (ROOT / "deploy" / "kubernetes" / "grok-chat-mcp.yaml").read_text()
    assert '"--auth", "oauth", "--public-url", "https://grok.example.com"' in text
    assert "secretKeyRef:\n                  name: grok-chat-mcp-oauth" in text
    maxmemory = int(re.search(r'"--maxmemory", "(\d+)mb"', text).group(1))  # type: ignore[union-attr]
    assert maxmemory * 1024 * 1024 > Limits().max_total_bytes
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "Ingress"):
        assert f"kind: {kind}" in text
    readme = (ROOT / "deploy" / "README.md").read_text()
    for named in ("PodDisruptionBudget", "Ingress", "grok-chat-mcp-oauth", "Redis", "built locally"):
        assert named in readme
    docs = (ROOT / "docs" / "http.md").read_text()
    assert "kubectl create secret generic grok-chat-mcp-oauth" in docs
    assert "docker build -f deploy/docker/Dockerfile" in docs
