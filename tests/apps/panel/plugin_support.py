"""A real marketplace for the plugin tests: a folder served by a static HTTP server on loopback, an index
signed with a market key, packages signed with a publisher key (pentad.apps.panel.plugins.market)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pentad.apps.panel.plugins.market import build_package, index_entry
from pentad.apps.panel.plugins.signing import keygen, sign

EXAMPLES = Path(__file__).parents[3] / "examples" / "panel_plugins"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def static_host(folder: Path) -> Iterator[str]:
    """Serve `folder` over HTTP on loopback; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class Market:
    """A market folder: `publish` plugin folders, then `sign` writes index.json and index.json.sig."""

    def __init__(self, folder: Path, base_url: str) -> None:
        self.folder = folder
        self.base_url = base_url
        self.index_private, self.index_public = keygen()
        self.publisher_private, self.publisher_public = keygen()
        self.entries: list[dict[str, Any]] = []

    @property
    def source(self) -> str:
        return self.base_url + "index.json"

    def publish(
        self, plugin: Path, *, private_key: str | None = None, public_key: str | None = None
    ) -> bytes:
        package = build_package(plugin)
        manifest = json.loads((plugin / "pentad-plugin.json").read_text())
        name = f"{manifest['id']}-{manifest['version']}.zip"
        (self.folder / "packages").mkdir(exist_ok=True)
        (self.folder / "packages" / name).write_bytes(package)
        entry = index_entry(
            package,
            f"packages/{name}",
            private_key or self.publisher_private,
            public_key or self.publisher_public,
        )
        self.entries = [e for e in self.entries if e["manifest"]["id"] != manifest["id"]] + [entry]
        self.sign()
        return package

    def sign(self, private_key: str | None = None) -> None:
        data = json.dumps({"name": "test market", "plugins": self.entries}, indent=1).encode()
        (self.folder / "index.json").write_bytes(data)
        (self.folder / "index.json.sig").write_text(sign(private_key or self.index_private, data))


def plugin_folder(root: Path, manifest: dict[str, Any], files: dict[str, str]) -> Path:
    folder = root / f"{manifest['id']}-{manifest['version']}"
    folder.mkdir(parents=True, exist_ok=True)
    base = {"name": manifest["id"], "publisher": "pentad-examples", "api_version": 1}
    (folder / "pentad-plugin.json").write_text(json.dumps({**base, **manifest}))
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder
