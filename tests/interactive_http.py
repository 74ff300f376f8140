"""A client for the interactive page's JSON API in tests: what the page's script sends, and raw requests.

    api = Api(url)                       # url as `serving` yields it, token included
    api.post("accept", {"count": 2})     # -> (status, JSON payload), with token, tab and Content-Type
    raw(url, b"POST /api/next HTTP/1.1\\r\\n...")  # bytes on a socket -> (status, headers, JSON payload)
"""

import http.client
import json
import socket
from urllib.parse import parse_qs, urlsplit


class Api:
    def __init__(self, url: str, tab: str = "tab-one"):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.token = parse_qs(parts.query)["token"][0]
        self.tab = tab

    def headers(self, **extra) -> dict:
        return {"Content-Type": "application/json", "X-BigModel-Token": self.token, "X-BigModel-Tab": self.tab,
                **extra}

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """(status, response headers, parsed JSON or None if the answer is not JSON)."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=self.headers() if headers is None else headers)
            response = connection.getresponse()
            data = response.read()
            kind = response.headers.get("Content-Type", "")
            return response.status, response.headers, json.loads(data) if kind == "application/json" else data
        finally:
            connection.close()

    def post(self, action: str, body: dict | None = None, **headers):
        status, _, payload = self.request("POST", "/api/" + action, json.dumps(body or {}).encode(),
                                          self.headers(**headers))
        return status, payload

    def ok(self, action: str, body: dict | None = None) -> dict:
        status, payload = self.post(action, body)
        assert status == 200, (action, body, status, payload)
        return payload

    def state(self) -> dict:
        status, _, payload = self.request("GET", "/api/state")
        assert status == 200, payload
        return payload


def raw(url: str, request: bytes, timeout: float = 30) -> tuple[int | None, dict, object]:
    """Send `request` as is, read until the server closes; (status, headers, JSON payload) or (None, {}, b"")
    when the server closed without answering."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(request)
        return parse_answer(read_all(sock))


def read_all(sock) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def parse_answer(data: bytes) -> tuple[int | None, dict, object]:
    if not data:
        return None, {}, b""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    payload = json.loads(body) if headers.get("Content-Type") == "application/json" else body
    return int(lines[0].split()[1]), headers, payload
