"""The console as local mode's gateway serves it: the site's files at ``/console/``, beside the API.

The console and the API share the gateway's origin here, so the console calls the
API and fetches artifacts without CORS, and its ``config.json`` names the API as
the site's own root, whatever name the browser reached the gateway by.
"""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass, field

from .. import console
from ..domain import errors

CONSOLE_ROOT = "/console/"


@dataclass(frozen=True)
class ConsoleResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def console_response(path: str) -> ConsoleResponse:
    """The answer to a GET of ``path``: ``/console`` or below it.

    Raises RouteNotFoundError for a path that is not one of the site's files.
    """
    if path == CONSOLE_ROOT.rstrip("/"):
        return ConsoleResponse(301, b"", {"Location": CONSOLE_ROOT})
    name = path.removeprefix(CONSOLE_ROOT) or console.INDEX_FILE
    if name == console.CONFIG_FILE:
        body, content_type = json.dumps({"apiUrl": "/"}).encode(), "application/json"
    else:
        file = console.site_files().get(name)
        if file is None:
            raise errors.RouteNotFoundError(f"the console has no file {name}")
        body = file.read_bytes()
        content_type = _content_type(name)
    headers = {
        **console.security_headers(),
        "Content-Type": content_type,
        # Served from the package, so a new release must be seen at once; the files are small.
        "Cache-Control": "no-cache",
    }
    return ConsoleResponse(200, body, headers)


def _content_type(name: str) -> str:
    # Module scripts must be served as JavaScript (nosniff); some systems' tables say text/plain.
    if name.endswith(".js"):
        return "text/javascript; charset=utf-8"
    guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed
