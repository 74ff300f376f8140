"""Checking what a request to the interactive page's JSON API carries, before any of it reaches a session.

    body = parse_body(raw_bytes)                      # a JSON object, or ApiError (400)
    fields = check_fields(body, {"count": Whole(0, 10_000)})

Every failure is an `ApiError` with an HTTP status (4xx) and a one-line message the page shows; nothing
here touches the session or the corrections file. Strings must be valid Unicode (a JSON `\\ud800` escape
decodes to a lone surrogate that no UTF-8 encoder accepts later), numbers finite, nesting shallow.
"""

import json
import math
from dataclasses import dataclass

MAX_TEXT_CHARS = 1000  # the translation recipe's cleaning drops longer sentences too (max_chars)
MAX_DEPTH = 4          # the API's objects are flat; deeper nesting is refused before it costs anything


class ApiError(ValueError):
    """A request the API refuses: `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _no_constants(name: str):
    raise ApiError(400, f"{name} is not a number JSON allows; send a finite number")


def _depth(raw: str) -> int:
    """The deepest nesting of [ and { outside strings (checked before json.loads, which recurses)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in raw:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_body(raw: bytes) -> dict:
    """The request body as a JSON object (an empty body is `{}`)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ApiError(400, f"the body is not valid UTF-8 (byte {error.start})") from None
    if not text.strip():
        return {}
    if _depth(text) > MAX_DEPTH:
        raise ApiError(400, f"the JSON is nested deeper than {MAX_DEPTH} levels; send a flat object")
    try:
        body = json.loads(text, parse_constant=_no_constants)
    except ApiError:
        raise
    except json.JSONDecodeError as error:
        raise ApiError(400, f"the body is not valid JSON: {error.msg} at column {error.colno}") from None
    except ValueError as error:  # e.g. an integer with more digits than Python converts
        raise ApiError(400, f"the body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"send a JSON object, not {type(body).__name__}")
    return body


def check_unicode(text: str, what: str) -> str:
    """`text` unchanged if it encodes as UTF-8 (no lone surrogates), else ApiError."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ApiError(400, f"{what} holds a lone surrogate (\\u{ord(text[error.start]):04x}); "
                            "send valid Unicode") from None
    return text


@dataclass(frozen=True)
class Text:
    """A string of at most `max_chars` characters; `null` allowed only if `nullable`."""
    required: bool = False
    nullable: bool = False
    max_chars: int = MAX_TEXT_CHARS

    def check(self, name: str, value):
        if value is None and self.nullable:
            return None
        if not isinstance(value, str):
            raise ApiError(400, f"'{name}' must be a string, not {_kind(value)}")
        if len(value) > self.max_chars:
            raise ApiError(400, f"'{name}' is {len(value)} characters long; at most {self.max_chars}")
        return check_unicode(value, f"'{name}'")


@dataclass(frozen=True)
class Whole:
    """A whole number in [low, high] (JSON `2.0` counts; `true`, `1.5`, `1e999` do not)."""
    low: int
    high: int
    required: bool = True

    def check(self, name: str, value):
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApiError(400, f"'{name}' must be a whole number, not {_kind(value)}")
        if not self.low <= value <= self.high:
            raise ApiError(400, f"'{name}' must be between {self.low} and {self.high}, not {value}")
        return value


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of strings (a language code the model writes, say); anything else is refused."""
    options: tuple[str, ...]
    required: bool = False

    def check(self, name: str, value):
        if not isinstance(value, str):
            raise ApiError(400, f"'{name}' must be a string, not {_kind(value)}")
        if value not in self.options:
            shown = value[:20].encode("ascii", "backslashreplace").decode("ascii")
            allowed = ", ".join(self.options) if self.options else "none (this model writes one language)"
            raise ApiError(400, f"'{name}' {shown!r} is not allowed; choose one of: {allowed}")
        return value


@dataclass(frozen=True)
class Flag:
    required: bool = False

    def check(self, name: str, value):
        if not isinstance(value, bool):
            raise ApiError(400, f"'{name}' must be true or false, not {_kind(value)}")
        return value


def _kind(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def check_fields(body: dict, spec: dict) -> dict:
    """`body`'s fields checked against `spec` ({name: Text(...) | Whole(...) | Flag(...)}); unknown names
    are refused so a misspelt field is not silently ignored. Absent optional fields are left out."""
    unknown = sorted(set(body) - set(spec))
    if unknown:
        allowed = ", ".join(spec) or "none"
        raise ApiError(400, f"unknown field(s) {', '.join(map(repr, unknown))}; this action takes: {allowed}")
    checked = {}
    for name, field in spec.items():
        if name in body:
            checked[name] = field.check(name, body[name])
        elif field.required:
            raise ApiError(400, f"missing field '{name}'")
    return checked
