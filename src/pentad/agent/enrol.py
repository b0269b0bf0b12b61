"""`pentad agent enrol URL TOKEN`: swap a one-time enrolment token for this node's credential.

The panel answers POST /api/panel/agent/enrol with the node's id and its credential (`pnd_…`, shown once;
the panel keeps only its hash). The agent stores it (JSON: panel URL, node id and name, credential) at
AgentSettings.credential_path (`<data dir>/credential`), mode 0600, written to a
temporary file and renamed so a crash never leaves half a credential. The sandbox mounts only each
server's own folder, so no game ever sees this file.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import click
import httpx

from pentad.agent.settings import AgentSettings
from pentad.panel_wire.protocol import ENROL_PATH, EnrolRequest, EnrolResponse


class EnrolError(Exception):
    """Enrolment failed; the message says why (the panel's problem detail when it answered)."""


@dataclass(frozen=True)
class NodeCredential:
    panel_url: str
    node_id: str
    node_name: str
    credential: str

    def __repr__(self) -> str:  # the credential never reaches a log line
        return f"NodeCredential(panel_url={self.panel_url!r}, node_id={self.node_id!r})"


def save_credential(path: Path, credential: NodeCredential) -> None:
    # 0711: the folder is usually the agent's data folder, which game uids must pass through to reach
    # their server folders (never list); the file itself is 0600
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True)
        path.parent.chmod(0o711)  # explicitly: `pentad` runs with umask 077
    temporary = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(
            {
                "panel_url": credential.panel_url,
                "node_id": credential.node_id,
                "node_name": credential.node_name,
                "credential": credential.credential,
            },
            file,
        )
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def load_credential(path: Path) -> NodeCredential:
    """The stored credential (EnrolError when there is none or it cannot be read)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return NodeCredential(
            panel_url=str(data["panel_url"]),
            node_id=str(data["node_id"]),
            node_name=str(data.get("node_name", "")),
            credential=str(data["credential"]),
        )
    except FileNotFoundError:
        raise EnrolError(f"no node credential at {path}: run `pentad agent enrol URL TOKEN` first") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise EnrolError(f"cannot read the node credential at {path}: {error}") from None


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{body.get('code', response.status_code)}: {body.get('detail') or body.get('title')}"
    except ValueError:
        return f"HTTP {response.status_code}"


def enrol(
    panel_url: str,
    token: str,
    path: Path,
    *,
    facts: dict[str, object] | None = None,
    timeout: float = 15.0,
    transport: httpx.BaseTransport | None = None,
) -> NodeCredential:
    """Enrol this node with the panel at `panel_url` and store its credential at `path`."""
    base = panel_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise EnrolError("the panel URL starts with http:// or https://")
    request = EnrolRequest(token=token, facts=dict(facts or {}))
    try:
        with httpx.Client(timeout=timeout, transport=transport) as client:
            response = client.post(
                f"{base}{ENROL_PATH}",
                content=request.model_dump_json(),
                headers={"content-type": "application/json"},
            )
    except httpx.HTTPError as error:
        raise EnrolError(f"cannot reach the panel at {base}: {error}") from None
    if response.status_code != 200:
        raise EnrolError(f"the panel refused the enrolment ({_problem(response)})")
    try:
        answer = EnrolResponse.model_validate_json(response.content)
    except ValueError:
        raise EnrolError("the panel's answer is not an enrolment response") from None
    credential = NodeCredential(base, answer.node_id, answer.node_name, answer.credential)
    save_credential(path, credential)
    return credential


def configured_credential(settings: AgentSettings) -> NodeCredential:
    """The credential the agent connects with: PENTAD_AGENT__NODE_CREDENTIAL with PENTAD_AGENT__PANEL_URL
    (containers; the node id then comes from the panel), else the file `enrol` wrote."""
    if settings.node_credential is not None:
        if not settings.panel_url:
            raise EnrolError("PENTAD_AGENT__NODE_CREDENTIAL needs PENTAD_AGENT__PANEL_URL too")
        return NodeCredential(settings.panel_url, "", "", settings.node_credential.get_secret_value())
    stored = load_credential(settings.credential_path)
    if settings.panel_url and settings.panel_url.rstrip("/") != stored.panel_url:
        return NodeCredential(
            settings.panel_url.rstrip("/"), stored.node_id, stored.node_name, stored.credential
        )
    return stored


@click.command("enrol")
@click.argument("url", required=False)
@click.argument("token", required=False)
@click.option("--panel", "panel_option", help="The panel's URL (instead of the URL argument).")
@click.option("--token", "token_option", help="The enrolment token (instead of the TOKEN argument).")
def enrol_command(
    url: str | None, token: str | None, panel_option: str | None, token_option: str | None
) -> None:
    """Enrol this host with the panel at URL using a one-time TOKEN (pne_…) from the panel's admin."""
    url = url or panel_option
    token = token or token_option
    if not url or not token:
        raise click.UsageError("give the panel's URL and the enrolment token: pentad agent enrol URL TOKEN")
    settings = AgentSettings()
    path = settings.credential_path
    try:
        credential = enrol(url, token, path, facts={"hostname": os.uname().nodename})
    except EnrolError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"enrolled as node {credential.node_name} ({credential.node_id}); credential stored in {path}")
