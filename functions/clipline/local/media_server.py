"""A static file server with HTTP Range support, for the demo, tests and benchmarks.

werkzeug's ``send_from_directory`` answers Range requests as a real CDN or S3
does, so ffmpeg can seek in a source instead of downloading it. The server
counts the bytes it sends, which is how we measure what a clip reads.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator

from werkzeug.exceptions import HTTPException
from werkzeug.serving import make_server
from werkzeug.utils import send_from_directory
from werkzeug.wrappers import Request


class MediaServer:
    """Serves ``root`` on 127.0.0.1 in a background thread and counts bytes and requests."""

    def __init__(
        self, root: Path, port: int = 0, *, trickle_after_bytes: int | None = None, trickle_bytes_per_second: float = 0
    ) -> None:
        """With ``trickle_after_bytes``, each answer past that many bytes is sent at ``trickle_bytes_per_second``:
        a slow source, so that tests and benchmarks can act on a cut while it still runs."""
        self.root = root.resolve()
        self._trickle_after = trickle_after_bytes
        self._trickle_rate = trickle_bytes_per_second
        self.bytes_sent = 0
        self.requests = 0
        self._lock = threading.Lock()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = make_server("127.0.0.1", port, self._app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="media-server", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def reset_counters(self) -> None:
        with self._lock:
            self.bytes_sent = 0
            self.requests = 0

    def _count(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        sent = 0
        for chunk in chunks:
            if self._trickle_after is not None and sent > self._trickle_after:
                time.sleep(len(chunk) / self._trickle_rate)
            sent += len(chunk)
            with self._lock:
                self.bytes_sent += len(chunk)
            yield chunk

    def _app(self, environ: dict, start_response):  # noqa: ANN001 - WSGI signature
        request = Request(environ)
        with self._lock:
            self.requests += 1
        try:
            response = send_from_directory(self.root, request.path.lstrip("/"), environ)
        except HTTPException as error:
            response = error.get_response(environ)
        return self._count(response(environ, start_response))

    def start(self) -> "MediaServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "MediaServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
