"""CloudEvents as KServe's payload logger sends them, parsed into :class:`InferenceEvent`.

KServe's logger (pkg/logger/worker.go) posts each request and response in binary mode:
``ce-id`` (the inference's id, the same for its request and response), ``ce-type``
(``org.kubeflow.serving.inference.request`` / ``.response``), ``ce-source``,
``ce-specversion: 1.0``, ``ce-time`` and the extensions ``ce-inferenceservicename``,
``ce-namespace``, ``ce-component``, ``ce-endpoint`` and ``ce-metadata`` (JSON of
selected request headers). Structured mode (``application/cloudevents+json``) is
accepted as well, and so is batched mode (``application/cloudevents-batch+json``: a JSON
array of structured-mode events, what FreightML's own predictor sends), parsed by
:func:`events_from_batch`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import cloudevents.exceptions as ce_exceptions
import orjson
from cloudevents.http import CloudEvent, from_http

from freightml.domain import REQUEST_EVENT_TYPE, RESPONSE_EVENT_TYPE

REQUEST_TYPE = REQUEST_EVENT_TYPE  # the names this module has always exported
RESPONSE_TYPE = RESPONSE_EVENT_TYPE
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"

# conflict: an event with the id and type of a stored one but another source or body (a
# forgery or a sender bug); not stored
Outcome = Literal["stored", "duplicate", "conflict"]

_BINARY_REQUIRED = ("ce-id", "ce-type", "ce-source", "ce-specversion")
_STRUCTURED_REQUIRED = ("id", "type", "source", "specversion")
# What a required attribute may not consist of alone: Python's whitespace (str.isspace)
# and ECMAScript's \s together, so that the OpenAPI pattern (an ECMAScript regular
# expression, which API fuzzers generate against) and this check agree on every character.
BLANK_CHARS = "".join(sorted({chr(c) for c in range(0x3001) if chr(c).isspace()} | {"\ufeff"}))


def is_blank(value: Any) -> bool:
    """Whether ``value`` is missing, empty or made of BLANK_CHARS only."""
    return not str(value or "").strip(BLANK_CHARS)


_UNPARSED: Any = object()
_MAX_LENGTH = {  # the widths of the inference_events columns
    "id": 255,
    "type": 255,
    "source": 1024,
    "specversion": 16,
    "time": 64,
    "datacontenttype": 255,
    "inferenceservicename": 255,
    "namespace": 255,
    "component": 255,
    "endpoint": 255,
}


class BadEventError(ValueError):
    """The HTTP request is not a CloudEvent we can store; the message says why."""


@dataclass(frozen=True)
class InferenceEvent:
    """One received CloudEvent: its attributes and its data as JSON text."""

    event_id: str
    event_type: str
    source: str
    specversion: str = "1.0"
    time: str | None = None
    inference_service: str | None = None
    namespace: str | None = None
    component: str | None = None
    endpoint: str | None = None
    content_type: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    body: str | None = None  # the data as JSON text: as received in binary mode
    parsed: Any = field(default=_UNPARSED, compare=False, repr=False)  # body, already parsed

    @property
    def kind(self) -> Literal["request", "response"] | None:
        """``request``/``response`` for KServe's inference events, None for other types."""
        if self.event_type == REQUEST_TYPE:
            return "request"
        if self.event_type == RESPONSE_TYPE:
            return "response"
        return None

    def data(self) -> Any:
        """The body parsed from JSON (None when empty)."""
        if self.parsed is not _UNPARSED:
            return self.parsed
        return json.loads(self.body) if self.body else None


def kserve_cloudevent(
    kind: Literal["request", "response"],
    inference_id: str,
    data: Any,
    *,
    inference_service: str = "freight-volume",
    namespace: str = "default",
    component: str = "predictor",
    endpoint: str = "default",
    source: str = "http://localhost:9081/",
) -> CloudEvent:
    """The CloudEvent KServe's payload logger would send for one request or response
    (what the embedded predictor sends instead of the logger; send it with
    ``cloudevents.conversion.to_binary``)."""
    attributes = {
        "id": inference_id,
        "type": REQUEST_TYPE if kind == "request" else RESPONSE_TYPE,
        "source": source,
        "specversion": "1.0",
        "datacontenttype": "application/json",
        "inferenceservicename": inference_service,
        "namespace": namespace,
        "component": component,
        "endpoint": endpoint,
    }
    return CloudEvent(attributes, data)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True  # KServe forwards the request's content type, usually JSON; assume it
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json") or media == "text/json"


def _strict_json(content: str | bytes | None) -> Any:
    """Data unmarshaller for the SDK: JSON or an error (the SDK would keep bad JSON as text)."""
    if content is None or content in ("", b""):
        return None
    return json.loads(content)


def event_from_http(headers: dict[str, str], body: bytes) -> InferenceEvent:
    """Parse a binary- or structured-mode CloudEvent; :class:`BadEventError` if invalid.

    The body must be JSON (an empty body is allowed and stored as None). Missing required
    attributes, an unsupported specversion or unparsable JSON are named in the error.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    content_type = lowered.get("content-type", "")
    structured = content_type.split(";", 1)[0].strip().lower() == STRUCTURED_CONTENT_TYPE
    if not structured:
        missing = [h for h in _BINARY_REQUIRED if is_blank(lowered.get(h, ""))]
        if missing:
            raise BadEventError(
                f"not a CloudEvent: missing header(s) {', '.join(missing)} (binary mode needs "
                f"{', '.join(_BINARY_REQUIRED)}; structured mode needs Content-Type: "
                f"{STRUCTURED_CONTENT_TYPE})"
            )
        if not _is_json(content_type):
            raise BadEventError(
                f"unsupported content-type {content_type!r}: the collector stores JSON bodies"
            )
        sent_time = "ce-time" in lowered
    else:
        sent_time = "time" in _check_structured(body)
    try:
        event = from_http(lowered, body, data_unmarshaller=_strict_json)
    except ce_exceptions.DataUnmarshallerError as exc:
        raise BadEventError(f"body is not valid JSON: {_cause(exc)}") from exc
    except ce_exceptions.GenericException as exc:
        raise BadEventError(f"invalid CloudEvent: {exc}") from exc
    attributes = {k: v for k, v in event.get_attributes().items()}
    if not sent_time:
        attributes.pop("time", None)  # the SDK fills in "now"; keep only what was sent
    _check_lengths(attributes)
    data = event.get_data()
    if isinstance(data, (bytes, bytearray)):  # data_base64 in structured mode
        data = _strict_json_or_400(data)
    text = _body_text(body, data, structured)
    return InferenceEvent(
        event_id=str(attributes["id"]),
        event_type=str(attributes["type"]),
        source=str(attributes["source"]),
        specversion=str(attributes["specversion"]),
        time=_opt(attributes.get("time")),
        inference_service=_opt(attributes.get("inferenceservicename")),
        namespace=_opt(attributes.get("namespace")),
        component=_opt(attributes.get("component")),
        endpoint=_opt(attributes.get("endpoint")),
        content_type=_opt(attributes.get("datacontenttype"))
        or (None if structured else content_type or None),
        attributes={k: _jsonable(v) for k, v in attributes.items()},
        body=text,
        parsed=data,
    )


def _check_lengths(attributes: dict[str, Any]) -> None:
    for name, limit in _MAX_LENGTH.items():
        value = attributes.get(name)
        if value is not None and len(str(value)) > limit:
            raise BadEventError(f"attribute {name} is longer than {limit} characters")
        if value is not None and "\x00" in str(value):
            raise BadEventError(f"attribute {name} contains a NUL character")


def _body_text(body: bytes, data: Any, structured: bool) -> str | None:
    """The data as JSON text: the body as received in binary mode, else re-serialised."""
    if data is None:
        return None
    if not structured:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:  # JSON in UTF-16/32: store it as UTF-8 text
            pass
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _check_structured(body: bytes) -> dict[str, Any]:
    try:
        envelope = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadEventError(f"structured CloudEvent body is not valid JSON: {exc}") from exc
    if not isinstance(envelope, dict):
        raise BadEventError(
            f"structured CloudEvent must be a JSON object, got {type(envelope).__name__}"
        )
    missing = [a for a in _STRUCTURED_REQUIRED if is_blank(envelope.get(a))]
    if missing:
        raise BadEventError(f"structured CloudEvent is missing attribute(s) {', '.join(missing)}")
    not_text = [a for a in _MAX_LENGTH if a in envelope and not isinstance(envelope[a], str)]
    if not_text:
        raise BadEventError(
            f"structured CloudEvent attribute(s) {', '.join(not_text)} must be strings"
        )
    return envelope


def _strict_json_or_400(data: bytes | bytearray) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadEventError(f"data_base64 does not hold JSON: {exc}") from exc


def _cause(exc: Exception) -> str:
    inner = exc.__cause__ or exc.__context__
    return str(inner) if inner else str(exc)


def _opt(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def is_batch(content_type: str | None) -> bool:
    """True for ``application/cloudevents-batch+json`` (parameters ignored)."""
    return (content_type or "").split(";", 1)[0].strip().lower() == BATCH_CONTENT_TYPE


def events_from_batch(body: bytes) -> list[InferenceEvent | BadEventError]:
    """Parse a CloudEvents JSON batch: one event, or the error naming its problem, per element.

    The body must be a JSON array (it may be empty); :class:`BadEventError` if it is not.
    Each element must be a structured-mode event: the attributes ``id``, ``type``,
    ``source`` and ``specversion`` 1.0, JSON ``data`` (or ``data_base64`` holding JSON).
    """
    try:
        items = orjson.loads(body)  # ~4x json.loads: batches are the collector's bulk input
    except orjson.JSONDecodeError as exc:
        raise BadEventError(f"CloudEvents batch is not valid JSON: {exc}") from exc
    if not isinstance(items, list):
        raise BadEventError(
            f"a CloudEvents batch ({BATCH_CONTENT_TYPE}) must be a JSON array of "
            f"structured-mode events, got a JSON {type(items).__name__}"
        )
    out: list[InferenceEvent | BadEventError] = []
    for item in items:
        try:
            out.append(event_from_structured(item))
        except BadEventError as exc:
            out.append(exc)
    return out


def event_from_structured(envelope: Any) -> InferenceEvent:
    """One structured-mode event (already parsed JSON); :class:`BadEventError` if invalid."""
    if not isinstance(envelope, dict):
        raise BadEventError(f"not a CloudEvent: a JSON {type(envelope).__name__}, not an object")
    missing = [a for a in _STRUCTURED_REQUIRED if is_blank(envelope.get(a))]
    if missing:
        raise BadEventError(f"CloudEvent is missing attribute(s) {', '.join(missing)}")
    if str(envelope["specversion"]) != "1.0":
        raise BadEventError(f"unsupported specversion {envelope['specversion']!r} (need 1.0)")
    attributes = {k: v for k, v in envelope.items() if k not in ("data", "data_base64")}
    if "data" in envelope and "data_base64" in envelope:
        raise BadEventError("CloudEvent has both data and data_base64")
    content_type = _opt(attributes.get("datacontenttype"))
    if "data_base64" in envelope:
        try:
            raw = base64.b64decode(str(envelope["data_base64"]), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadEventError(f"data_base64 is not base64: {exc}") from exc
        if not _is_json(content_type):
            raise BadEventError(
                f"unsupported datacontenttype {content_type!r}: the collector stores JSON data"
            )
        data = _strict_json_or_400(raw)
    else:
        if not _is_json(content_type):
            raise BadEventError(
                f"unsupported datacontenttype {content_type!r}: the collector stores JSON data"
            )
        data = envelope.get("data")
    _check_lengths(attributes)
    for key, value in attributes.items():
        if not isinstance(value, str | int | float | bool) and value is not None:
            raise BadEventError(f"attribute {key} must be a string, number or boolean")
    return InferenceEvent(
        event_id=str(attributes["id"]),
        event_type=str(attributes["type"]),
        source=str(attributes["source"]),
        specversion="1.0",
        time=_opt(attributes.get("time")),
        inference_service=_opt(attributes.get("inferenceservicename")),
        namespace=_opt(attributes.get("namespace")),
        component=_opt(attributes.get("component")),
        endpoint=_opt(attributes.get("endpoint")),
        content_type=content_type,
        attributes=attributes,
        body=None if data is None else orjson.dumps(data).decode(),
        parsed=data,
    )
