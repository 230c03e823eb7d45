"""An OpenAI-compatible transcription endpoint on loopback, for the openai provider's tests on every host."""

from __future__ import annotations

import json
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERBOSE_JSON = {
    "task": "transcribe",
    "language": "english",
    "duration": 9.47,
    "text": "The quick brown fox jumps over the lazy dog. Every word has a start.",
    "segments": [
        {"id": 0, "seek": 0, "start": 0.1, "end": 2.9, "text": " The quick brown fox jumps over the lazy dog."},
        {"id": 1, "seek": 0, "start": 3.4, "end": 5.0, "text": " Every word has a start."},
    ],
    "words": [
        {"word": "The", "start": 0.1, "end": 0.3},
        {"word": "quick", "start": 0.3, "end": 0.6},
        {"word": "brown", "start": 0.6, "end": 0.9},
        {"word": "fox", "start": 0.9, "end": 1.2},
        {"word": "jumps", "start": 1.2, "end": 1.6},
        {"word": "over", "start": 1.6, "end": 1.9},
        {"word": "the", "start": 1.9, "end": 2.0},
        {"word": "lazy", "start": 2.0, "end": 2.4},
        {"word": "dog.", "start": 2.4, "end": 2.9},
        # A word in the gap between segments, as servers produce at a segment edge.
        {"word": "Every", "start": 3.0, "end": 3.6},
        {"word": "word", "start": 3.6, "end": 3.9},
        {"word": "has", "start": 3.9, "end": 4.2},
        {"word": "a", "start": 4.2, "end": 4.3},
        {"word": "start.", "start": 4.3, "end": 5.0},
    ],
}


class TranscriptionApi:
    """An OpenAI-compatible transcription endpoint on 127.0.0.1 that records what it received."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status = 200
        self.body: bytes = json.dumps(VERBOSE_JSON).encode()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers["Content-Length"])
                raw = self.rfile.read(length)
                message = BytesParser(policy=HTTP).parsebytes(
                    f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + raw
                )
                fields: dict[str, list] = {}
                for part in message.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    value = part.get_payload(decode=True)
                    fields.setdefault(name, []).append(
                        (part.get_filename(), part.get_content_type(), value) if part.get_filename() else value.decode()
                    )
                api.requests.append({"path": self.path, "authorization": self.headers.get("Authorization"), "fields": fields})
                self.send_response(api.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(api.body)))
                self.end_headers()
                self.wfile.write(api.body)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> TranscriptionApi:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
