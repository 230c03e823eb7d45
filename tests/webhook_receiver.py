"""A real webhook receiver for tests: an HTTP server that answers each POST as scripted and keeps what it got."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Answers each POST with the next scripted status (204 once the script is used up).

    ``location`` is sent with a 3xx, so a test can tell whether it was followed.
    ``stall_first_seconds`` holds the first answer back that long.
    ``trickle_seconds`` makes every answer's body arrive a byte at a time over that
    long, as a slow or hostile receiver would; ``body_bytes`` is the body's size.
    """

    def __init__(
        self,
        *answers: int,
        location: str | None = None,
        trickle_seconds: float = 0.0,
        body_bytes: int = 0,
        host: str = "127.0.0.1",
        stall_first_seconds: float = 0.0,
    ) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        # The path of each request in ``received``: tests sharing one receiver give each job its own.
        self.paths: list[str] = []
        self._answers = list(answers)
        # Scripts of their own for some paths, so tests that share a receiver do not take each other's answers.
        self._answers_on: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["content-length"]))
                with owner._lock:
                    owner.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    owner.paths.append(self.path)
                    script = owner._answers_on.get(self.path, owner._answers)
                    status = script.pop(0) if script else 204
                    stall = stall_first_seconds if len(owner.received) == 1 else 0.0
                if stall:
                    time.sleep(stall)  # longer than the sender waits: the first attempt times out
                try:
                    self.send_response(status)
                    if location and 300 <= status < 400:
                        self.send_header("location", location)
                    self.send_header("content-length", str(body_bytes))
                    self.end_headers()
                    self._answer_body()
                except OSError:
                    pass  # the sender gave up waiting and hung up

            def _answer_body(self) -> None:
                if not body_bytes:
                    return
                if not trickle_seconds:
                    self.wfile.write(b"x" * body_bytes)
                    return
                pause = trickle_seconds / body_bytes
                try:
                    for _ in range(body_bytes):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(pause)
                except OSError:
                    pass  # the sender hung up, as it should once its timeout passed

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def script(self, *answers: int, path: str | None = None) -> None:
        """Answer the next POSTs (to ``path`` only, when given) with ``answers``, then 204."""
        with self._lock:
            if path is None:
                self._answers = list(answers)
            else:
                self._answers_on[path] = list(answers)

    def received_on(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        with self._lock:
            return [request for request, where in zip(self.received, self.paths) if where == path]

    def wait_for(self, count: int, timeout: float = 30, path: str | None = None) -> None:
        deadline = time.monotonic() + timeout

        def got() -> int:
            return len(self.received_on(path)) if path else len(self.received)

        while got() < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got() >= count, self.received

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "Receiver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
