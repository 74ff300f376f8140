"""`bigmodel-hf serve`: the same loop as the terminal on a local web page (standard library server only).

One person, one page: the server holds a single `TranslationSession` and the page sends it the person's
actions as small JSON requests (`POST /api/<action>`), getting back the whole state to draw. What the
server writes is training data, so a request is acted on only if all of these hold (else a JSON 4xx and
nothing changes):

- its `Host` is an address the server was bound to, with the port (DNS rebinding gets 403), and a
  browser's `Origin` / `Sec-Fetch-Site`, when sent, say the request came from the page itself (403);
- it carries the per-launch token (`X-BigModel-Token`; the page gets it from the URL printed at
  start-up, as Jupyter does) and, for actions, `Content-Type: application/json`, which a cross-site form
  or `text/plain` fetch cannot send without a preflight the server never grants (415);
- its body is exactly `Content-Length` bytes (missing 411, malformed 400, over 64 KB 413, shorter than
  announced 400: never acted on) and arrives within `request_timeout` seconds (else the socket closes);
- its fields pass `api_fields` (types, ranges, valid Unicode), and it comes from the tab that owns the
  session (the latest tab opened takes it over; an older tab gets 409 instead of cross-pairing).

The standard library's http.server is enough for one local user; what it lacks (a bounded thread pool,
a deadline for reading a request) is added below rather than taking a web framework as a dependency.
"""

import hmac
import io
import json
import queue
import re
import secrets
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib.resources import files
from urllib.parse import parse_qs, urlsplit

from .api_fields import ApiError, Choice, Flag, Text, Whole, check_fields, parse_body
from .session import CorrectionLog, TranslationSession

MAX_BODY = 64 * 1024
TOKEN_HEADER = "X-BigModel-Token"
TAB_HEADER = "X-BigModel-Tab"
TAB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

# sent with every answer: no framing (clickjacking), no MIME sniffing, only the page's own script and style
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",  # the page's URL holds the token
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}

# static files the page needs, served without the token (they hold no data)
STATIC = {"/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/page.css": ("page.css", "text/css; charset=utf-8")}


class InteractiveApp:
    """The state behind the page: the queue of sources, the current session, the log, the owning tab.

    `ACTIONS` is the one list of what `POST /api/<action>` can do: the method that does it and the fields
    it takes (checked by `api_fields.check_fields` before the method runs). A new action is one entry
    here and one method; what the page should draw goes into `state()`. The HTTP layer needs no change.
    The language fields (`language`, `start`'s `target_lang`) are added per instance: their allowed values
    are the target languages of the engine's model.
    """

    ACTIONS = {
        "claim": ("_claim", {}),
        "start": ("_start", {"source": Text(required=True)}),
        "next": ("_next", {}),
        "accept": ("_accept", {"count": Whole(0, 10_000)}),
        "type": ("_type", {"text": Text(required=True)}),
        "choose": ("_choose", {"index": Whole(0, 1_000)}),
        "approve": ("_approve", {"text": Text(nullable=True), "prefix_only": Flag()}),
    }

    def __init__(self, engine, log: CorrectionLog, sources: list[str] | None = None, threshold: float = 0.5,
                 adapter=None):
        self.engine, self.log, self.threshold = engine, log, threshold
        self.adapter = adapter  # an OnlineAdapter (--adapt): learns from each approval while the next is served
        self.queue = list(sources or [])
        self.session: TranslationSession | None = None
        self.saved = 0
        self.owner: str | None = None  # the tab whose actions the session follows
        self.lock = threading.Lock()  # one model, one session: requests take turns
        self.last_ms = 0.0
        # a multilingual engine writes any of its target languages: the page's selector offers those (and the
        # API accepts only those); a bilingual one offers none
        languages = getattr(engine, "languages", None)
        source_lang = getattr(engine, "source_lang", None)
        self.targets = sorted(code for code in languages.targets if code != source_lang) \
            if languages is not None and languages.multilingual else []
        self.target_lang = getattr(engine, "target_lang", None) if self.targets else None
        language = Choice(tuple(self.targets), required=True)
        self.ACTIONS = {**self.ACTIONS, "start": ("_start", {"source": Text(required=True),
                                                             "target_lang": Choice(tuple(self.targets))}),
                        "language": ("_language", {"target_lang": language})}

    def handle(self, action: str, body: dict, tab: str | None = None) -> dict:
        """Do `action` with the request's JSON `body` for browser tab `tab`; the new state, or ApiError.

        A failing action leaves the session as it was (each step below replaces it only once done).
        """
        if action == "state":
            with self.lock:
                return self.state()
        if action not in self.ACTIONS:
            raise ApiError(404, f"no action {action[:40]!r}; actions: {', '.join(self.ACTIONS)}")
        method, spec = self.ACTIONS[action]
        fields = check_fields(body, spec)
        with self.lock:
            if action != "claim" and self.owner is not None and tab != self.owner:
                raise ApiError(409, "this session now belongs to another tab of this page (opened later); "
                                    "close this tab, or reload it to take the session back")
            if self.owner is None or action == "claim":
                self.owner = tab
            started = time.perf_counter()
            try:
                getattr(self, method)(**fields)
            except ApiError:
                raise
            except ValueError as error:  # the session's own checks (a count past the proposal...)
                raise ApiError(400, str(error)) from None
            self.last_ms = (time.perf_counter() - started) * 1000
            return self.state()

    def _claim(self) -> None:
        pass  # the ownership change above is the whole action

    def _start(self, source: str, target_lang: str | None = None) -> None:
        source = " ".join(source.split())
        if not source:
            raise ApiError(400, "give a source sentence")
        self.session = TranslationSession(self.engine, source, target_lang or self.target_lang)
        self.target_lang = target_lang or self.target_lang  # chosen once the session exists

    def _language(self, target_lang: str) -> None:
        """The selector: later sentences go into `target_lang`, and the open one is proposed afresh in it."""
        if self.session is not None:
            self.session = TranslationSession(self.engine, self.session.source, target_lang)
        self.target_lang = target_lang

    def _next(self) -> None:
        self.session = TranslationSession(self.engine, self.queue[0], self.target_lang) if self.queue else None
        if self.queue:  # taken off the queue only once its session exists
            self.queue.pop(0)

    def _current(self) -> TranslationSession:
        if self.session is None:
            raise ApiError(400, "start a sentence first")
        return self.session

    def _accept(self, count: int) -> None:
        self._current().accept(count)

    def _type(self, text: str) -> None:
        self._current().type(text)

    def _choose(self, index: int) -> None:
        self._current().choose(index)

    def _approve(self, text: str | None = None, prefix_only: bool = False) -> None:
        session = self._current()
        if prefix_only and text is not None:
            raise ApiError(400, "give 'text' or 'prefix_only', not both")
        translation = session.approve_prefix() if prefix_only else session.approve(text)
        self.log.append(session.source, translation, session.target_lang)
        if self.adapter is not None:  # queued: the update runs while the next proposal is served
            self.adapter.learn(session.source, translation)
        self.saved += 1
        self.session = None
        self._next()

    def state(self) -> dict:
        state = {"saved": self.saved, "queued": len(self.queue), "threshold": self.threshold,
                 "log": str(self.log.path), "ms": round(self.last_ms, 1), "session": None,
                 "adaptation": None, "languages": {"targets": self.targets, "target_lang": self.target_lang}}
        if self.targets:
            state["languages"]["route"] = self.engine.route(self.target_lang).describe()
        if self.adapter is not None:
            status = self.adapter.status()
            state["adaptation"] = {key: status[key] for key in ("learned", "queued", "last_update", "error")}
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


class DeadlineReader(io.RawIOBase):
    """A socket's reading side that gives up `seconds` after the first read: a client sending a byte now
    and then (slowloris) cannot hold a handler thread longer than that."""

    def __init__(self, sock, seconds: float):
        self.sock, self.seconds, self.deadline = sock, seconds, None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        now = time.monotonic()
        self.deadline = self.deadline or now + self.seconds
        if now >= self.deadline:
            raise TimeoutError(f"the request was not complete within {self.seconds:g} s")
        self.sock.settimeout(self.deadline - now)
        return self.sock.recv_into(buffer)


def make_handler(app: InteractiveApp, token: str, allowed_hosts: set[str], request_timeout: float):
    static = {path: (files(__package__).joinpath("static", name).read_bytes(), kind)
              for path, (name, kind) in STATIC.items()}
    page = files(__package__).joinpath("static/index.html").read_bytes()
    allowed_origins = {f"http://{host}" for host in allowed_hosts}

    def has_token(given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), token.encode())

    class Handler(BaseHTTPRequestHandler):
        timeout = request_timeout  # also bounds each write to a client that stops reading
        unread_body = False
        default_request_version = "HTTP/1.0"  # so an answer to a garbled request line has headers too

        def setup(self):
            super().setup()
            self.rfile.close()  # http.server's plain reader, replaced by one with a deadline
            self.rfile = io.BufferedReader(DeadlineReader(self.connection, request_timeout))

        def finish(self):
            super().finish()
            if self.unread_body:  # closing on unread bytes would reset the connection, losing our answer
                self._drain()

        def _drain(self) -> None:
            """Read and drop what the client still sends (at most 1 MB, 1 s) after the answer went out."""
            try:
                self.connection.shutdown(socket.SHUT_WR)
                deadline, dropped = time.monotonic() + 1.0, 0
                while dropped < 16 * MAX_BODY and (left := deadline - time.monotonic()) > 0:
                    self.connection.settimeout(left)
                    chunk = self.connection.recv(65536)
                    if not chunk:
                        break
                    dropped += len(chunk)
            except OSError:
                pass

        def do_GET(self):  # noqa: N802 (http.server's naming)
            self._answer(self._get)

        def do_POST(self):  # noqa: N802
            self._answer(self._post)

        def _answer(self, route) -> None:
            # a body is unread until _read_body has read all of it (a GET's is never read)
            self.unread_body = self.command == "POST" or any(
                name in self.headers for name in ("Content-Length", "Transfer-Encoding"))
            try:
                self._check_origin()
                route(urlsplit(self.path))
            except ApiError as error:
                self.close_connection = True  # an unread body must not be taken for the next request
                self._json(error.status, {"error": str(error)})
            except TimeoutError:
                self.close_connection = True
                self._json(HTTPStatus.REQUEST_TIMEOUT, {"error": f"the request did not arrive within "
                                                                 f"{request_timeout:g} s; nothing was done"})
            except ConnectionError:  # the client hung up: there is no one to answer
                self.close_connection = True
            except Exception as error:  # a bug or a failing disk: answered, logged, the session intact
                print(f"bigmodel-hf serve: {self.command} {self.path[:80]}: {type(error).__name__}: {error}",
                      file=sys.stderr, flush=True)
                self.close_connection = True
                self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(error).__name__}: {error}"})

        def _check_origin(self) -> None:
            """DNS rebinding and cross-site requests stop here, before any route."""
            host = (self.headers.get("Host") or "").strip().lower()
            if host not in allowed_hosts:
                raise ApiError(403, f"Host {host[:80]!r} is not this server's address; "
                                    f"open {sorted(allowed_hosts)[0]} directly")
            origin = self.headers.get("Origin")
            if origin is not None and origin.lower() not in allowed_origins:
                raise ApiError(403, f"requests from {origin[:80]!r} are refused: only the page itself may call")
            site = self.headers.get("Sec-Fetch-Site")
            if site is not None and site not in ("same-origin", "none"):
                raise ApiError(403, f"{site} requests are refused: only the page itself may call")

        def _check_token(self, given: str | None) -> None:
            if not has_token(given):
                raise ApiError(403, "missing or wrong token: open the URL with ?token=... that "
                                    "`bigmodel-hf serve` printed at start-up")

        def _get(self, url) -> None:
            if url.path in ("/", "/index.html"):
                self._check_token((parse_qs(url.query).get("token") or [None])[0])
                self._send(HTTPStatus.OK, page, "text/html; charset=utf-8")
            elif url.path in static:
                self._send(HTTPStatus.OK, *static[url.path])
            elif url.path == "/api/state":
                self._check_token(self.headers.get(TOKEN_HEADER))
                self._json(HTTPStatus.OK, app.handle("state", {}))
            else:
                raise ApiError(404, f"no page {url.path[:80]!r}")

        def _post(self, url) -> None:
            if not url.path.startswith("/api/"):
                raise ApiError(404, f"no endpoint {url.path[:80]!r}")
            self._check_token(self.headers.get(TOKEN_HEADER))
            if self.headers.get_content_type() != "application/json":
                raise ApiError(415, f"send Content-Type: application/json, not "
                                    f"{(self.headers.get('Content-Type') or 'none')[:60]!r}")
            tab = self.headers.get(TAB_HEADER)
            if tab is None or not TAB_ID.fullmatch(tab):
                raise ApiError(400, f"send {TAB_HEADER}: an id of this browser tab (1-64 letters, digits, - or _)")
            body = parse_body(self._read_body())
            self._json(HTTPStatus.OK, app.handle(url.path[len("/api/"):], body, tab))

        def _read_body(self) -> bytes:
            """Exactly Content-Length bytes, or ApiError: a body is never guessed at or read to EOF."""
            if self.headers.get("Transfer-Encoding") is not None:
                raise ApiError(411, "send the body with a Content-Length, not Transfer-Encoding")
            lengths = {value.strip() for value in self.headers.get_all("Content-Length") or []}
            if not lengths:
                raise ApiError(411, "Content-Length is required")
            if len(lengths) > 1:
                raise ApiError(400, "conflicting Content-Length headers")
            value = lengths.pop()
            if not (value.isascii() and value.isdigit()):
                raise ApiError(400, f"Content-Length must be a whole number of bytes, not {value[:20]!r}")
            if len(value) > 12 or int(value) > MAX_BODY:
                raise ApiError(413, f"request too large: at most {MAX_BODY} bytes")
            length = int(value)
            data = self.rfile.read(length)
            self.unread_body = False
            if len(data) < length:
                raise ApiError(400, f"the body ended after {len(data)} of {length} bytes; nothing was done")
            return data

        def send_error(self, code, message=None, explain=None):
            """http.server's own refusals (bad request line, unknown method, huge headers) as JSON too."""
            self.close_connection = self.unread_body = True
            if code == HTTPStatus.NOT_IMPLEMENTED:  # a method other than GET and POST: the client's mistake
                code, message = HTTPStatus.METHOD_NOT_ALLOWED, f"{message}; use GET or POST"
            self._json(code, {"error": message or HTTPStatus(code).phrase})

        def _json(self, status, payload):
            self._send(status, json.dumps(payload).encode("ascii"), "application/json")

        def _send(self, status, data: bytes, content_type: str):
            self.connection.settimeout(request_timeout)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # keystroke requests would flood the terminal
            pass

    return Handler


class BoundedThreadingHTTPServer(HTTPServer):
    """An HTTPServer whose connections are handled by `max_threads` worker threads; up to `max_waiting`
    accepted connections wait their turn, and one more is answered 503 at once (ThreadingHTTPServer
    starts a thread per connection, without limit)."""

    request_queue_size = 128  # the listen backlog: a burst of connections waits instead of being reset

    def __init__(self, address, handler, max_threads: int = 16, max_waiting: int = 512):
        super().__init__(address, handler)
        self._waiting: queue.Queue = queue.Queue(max_waiting)
        self._workers = [threading.Thread(target=self._work, daemon=True, name=f"bigmodel-hf-serve-{i}")
                         for i in range(max_threads)]
        for worker in self._workers:
            worker.start()

    def process_request(self, request, client_address):
        try:
            self._waiting.put_nowait((request, client_address))
        except queue.Full:
            try:
                body = b'{"error": "the server is busy; try again"}'
                request.settimeout(1)
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            except OSError:
                pass
            self.shutdown_request(request)

    def _work(self) -> None:
        while (item := self._waiting.get()) is not None:
            request, client_address = item
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], OSError):  # a client hanging up mid-answer is routine
            super().handle_error(request, client_address)

    def server_close(self):
        super().server_close()
        while True:  # connections never started are closed; then each worker gets its stop mark
            try:
                item = self._waiting.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.shutdown_request(item[0])
        for _ in self._workers:
            self._waiting.put(None)


def allowed_hosts(host: str, port: int) -> set[str]:
    """`Host` header values that name this server: the bound address and the loopback names, with the port
    (browsers leave out :80)."""
    names = {"127.0.0.1", "localhost", "[::1]", f"[{host}]" if ":" in host else host}
    return {f"{name}:{port}".lower() for name in names} | ({name.lower() for name in names} if port == 80 else set())


def make_server(app: InteractiveApp, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
                request_timeout: float = 10.0, max_threads: int = 16,
                max_waiting: int = 512) -> BoundedThreadingHTTPServer:
    """A server for `app` (port 0 picks a free one); call `serve_forever()`. `server.url` is the page's
    address with the per-launch token (random unless given), `server.token` the token itself."""
    token = token or secrets.token_urlsafe(24)
    server = BoundedThreadingHTTPServer((host, port), None, max_threads=max_threads, max_waiting=max_waiting)
    bound = server.server_address[1]
    server.RequestHandlerClass = make_handler(app, token, allowed_hosts(host, bound), request_timeout)
    server.token = token
    shown = f"[{host}]" if ":" in host else host
    server.url = f"http://{shown}:{bound}/?token={token}"
    return server
