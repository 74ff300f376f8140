"""`bigmodel-hf serve`: the same loop as the terminal on a local web page (standard library server only).

One person, one page: the server holds a single `TranslationSession` and the page sends it the person's
actions as small JSON requests (`POST /api/<action>`), getting back the whole state to draw. It binds
127.0.0.1 unless told otherwise: anyone who can reach the port can append to the corrections file.
"""

import json
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files

from .session import CorrectionLog, TranslationSession

MAX_BODY = 64 * 1024


class InteractiveApp:
    """The state behind the page: the queue of sources, the current session, the log."""

    def __init__(self, engine, log: CorrectionLog, sources: list[str] | None = None, threshold: float = 0.5):
        self.engine, self.log, self.threshold = engine, log, threshold
        self.queue = list(sources or [])
        self.session: TranslationSession | None = None
        self.saved = 0
        self.lock = threading.Lock()  # one model, one session: requests take turns
        self.last_ms = 0.0

    def handle(self, action: str, body: dict) -> dict:
        with self.lock:
            started = time.perf_counter()
            if action == "start":
                source = " ".join(str(body.get("source", "")).split())
                if not source:
                    raise ValueError("give a source sentence")
                self.session = TranslationSession(self.engine, source)
            elif action == "next":
                self.session = TranslationSession(self.engine, self.queue.pop(0)) if self.queue else None
            elif action != "state":
                if self.session is None:
                    raise ValueError("start a sentence first")
                if action == "accept":
                    self.session.accept(int(body["count"]))
                elif action == "type":
                    self.session.type(str(body.get("text", "")))
                elif action == "choose":
                    self.session.choose(int(body["index"]))
                elif action == "approve":
                    self._approve(self.session.approve_prefix() if body.get("prefix_only") else
                                  self.session.approve(body.get("text")))
                else:
                    raise LookupError(action)
            if action != "state":
                self.last_ms = (time.perf_counter() - started) * 1000
            return self.state()

    def _approve(self, translation: str) -> None:
        self.log.append(self.session.source, translation)
        self.saved += 1
        self.session = TranslationSession(self.engine, self.queue.pop(0)) if self.queue else None

    def state(self) -> dict:
        state = {"saved": self.saved, "queued": len(self.queue), "threshold": self.threshold,
                 "log": str(self.log.path), "ms": round(self.last_ms, 1), "session": None}
        session = self.session
        if session is not None:
            proposal = session.proposal
            cursor = len(session.accepted)
            state["session"] = {
                "source": session.source, "accepted": cursor, "typed": session.typed, "text": proposal.text,
                "words": [{"text": w.text, "probability": w.probability, "accepted": i < cursor}
                          for i, w in enumerate(proposal.words)],
                "alternatives": [{"text": a.text, "score": round(a.score, 4)} for a in proposal.alternatives],
                "completions": session.completions,
            }
        return state


def make_handler(app: InteractiveApp):
    page = files(__package__).joinpath("static/index.html").read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            if self.path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, page, "text/html; charset=utf-8")
            elif self.path == "/api/state":
                self._json(HTTPStatus.OK, app.handle("state", {}))
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {self.path}"})

        def do_POST(self):  # noqa: N802
            if not self.path.startswith("/api/"):
                return self._json(HTTPStatus.NOT_FOUND, {"error": f"no endpoint {self.path}"})
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "request too large"})
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("send a JSON object")
                self._json(HTTPStatus.OK, app.handle(self.path[len("/api/"):], body))
            except LookupError as error:  # an unknown action or a missing field
                self._json(HTTPStatus.BAD_REQUEST, {"error": f"bad request: {error}"})
            except (ValueError, TypeError) as error:
                self._json(HTTPStatus.BAD_REQUEST, {"error": str(error)})

        def _json(self, status, payload):
            self._send(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), "application/json")

        def _send(self, status, data: bytes, content_type: str):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # keystroke requests would flood the terminal
            pass

    return Handler


def make_server(app: InteractiveApp, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A server for `app` (port 0 picks a free one: `server.server_address[1]`); call `serve_forever()`."""
    server = ThreadingHTTPServer((host, port), make_handler(app))
    server.daemon_threads = True
    return server
