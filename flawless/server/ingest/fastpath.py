"""The acknowledgement's fast path: one msgspec pass that decodes a JSON-RPC body of
``record_error`` calls and checks every report against the limits of flawless.report.

It answers only "this body can be stored exactly as it came": every call a valid
``record_error`` whose report parse_report would keep unchanged (no field to trim, clean,
or drop). Anything else (a ping, an invalid or oversize report, an unknown field, a NUL
or a lone surrogate) returns None and takes the general path, which names each problem.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional, Union

import msgspec
from msgspec import Meta

from flawless.report import (MAX_CHAINED, MAX_CHAINED_FRAMES, MAX_CONTEXT_ITEMS,
                             MAX_ERROR_COUNT, MAX_FRAMES, MAX_HEADER_CHARS, MAX_HEADERS,
                             MAX_LOCAL_REPR_CHARS, MAX_LOCALS_PER_FRAME, MAX_MESSAGE_CHARS,
                             MAX_METHOD_CHARS, MAX_NAME_CHARS, MAX_STRING_CHARS, MAX_TAG_CHARS,
                             MAX_TAGS, MAX_USER_ID_CHARS)

Text = Annotated[str, Meta(max_length=MAX_STRING_CHARS)]
Message = Annotated[str, Meta(max_length=MAX_MESSAGE_CHARS)]
Short = Annotated[str, Meta(max_length=255)]
Name = Annotated[str, Meta(max_length=MAX_NAME_CHARS)]
Count = Annotated[int, Meta(ge=1, le=MAX_ERROR_COUNT)]
Locals = Annotated[dict[Name, Annotated[str, Meta(max_length=MAX_LOCAL_REPR_CHARS)]],
                   Meta(max_length=MAX_LOCALS_PER_FRAME)]
Context = Annotated[dict[Name, Union[Text, bool, int, float]],
                    Meta(max_length=MAX_CONTEXT_ITEMS)]
Tags = Annotated[dict[Name, Annotated[str, Meta(max_length=MAX_TAG_CHARS)]],
                 Meta(max_length=MAX_TAGS)]
Headers = Annotated[dict[Name, Annotated[str, Meta(max_length=MAX_HEADER_CHARS)]],
                    Meta(max_length=MAX_HEADERS)]


class _Frame(msgspec.Struct, forbid_unknown_fields=True):
    filename: Text  # must not be blank: checked after decoding (a pattern costs more)
    line_number: Annotated[int, Meta(ge=1, le=10**9)]
    function_name: Text
    text: Optional[Text] = None
    frame_locals: Optional[Locals] = None


class _Request(msgspec.Struct, forbid_unknown_fields=True):
    method: Optional[Annotated[str, Meta(max_length=MAX_METHOD_CHARS)]] = None
    url: Optional[Text] = None
    route: Optional[Text] = None
    headers: Optional[Headers] = None


class _User(msgspec.Struct, forbid_unknown_fields=True):
    id: Annotated[str, Meta(max_length=MAX_USER_ID_CHARS)]


class _Chained(msgspec.Struct, forbid_unknown_fields=True):
    exception_type: Text  # must not be blank, like the report's
    exception_message: Message
    traceback: Annotated[list[_Frame], Meta(max_length=MAX_CHAINED_FRAMES)]


class _Report(msgspec.Struct, forbid_unknown_fields=True):
    exception_type: Text  # must not be blank, like filename
    exception_message: Message
    traceback: Annotated[list[_Frame], Meta(min_length=1, max_length=MAX_FRAMES)]
    hostname: Optional[Short] = None
    revision: Optional[Short] = None
    error_count: Optional[Count] = None
    error_threshold: Optional[Count] = None
    additional_info: Optional[Message] = None
    context: Optional[Context] = None
    timestamp: Optional[Annotated[float, Meta(ge=0, lt=10**11)]] = None
    level: Optional[Literal["error", "warning", "info"]] = None
    tags: Optional[Tags] = None
    request: Optional[_Request] = None
    user: Optional[_User] = None
    chained: Optional[Annotated[list[_Chained], Meta(min_length=1, max_length=MAX_CHAINED)]] = None


class _Params(msgspec.Struct, forbid_unknown_fields=True):
    report: _Report


class _Call(msgspec.Struct, forbid_unknown_fields=True):
    jsonrpc: Literal["2.0"]
    method: Literal["record_error"]
    params: _Params
    id: Union[int, str, None, msgspec.UnsetType] = msgspec.UNSET  # unset: a notification


_DECODER = msgspec.json.Decoder(Union[list[_Call], _Call])
# JSON can only carry a NUL or a surrogate as an escape; both need the general path.
_ESCAPE_NEEDING_CARE = re.compile(rb"\\u(?:0000|[dD][89abcdefABCDEF])")


@dataclass(frozen=True)
class StorableCalls:
    """A body of valid record_error calls that can be stored exactly as it came."""

    ids: tuple[Any, ...]          # the id of each call that expects an answer
    calls: int                    # how many calls (and reports) the body holds
    is_batch: bool


def _names_present(exception_type: str, traceback: list[_Frame]) -> bool:
    """The type and every frame's file name are not blank (parse_report refuses blanks)."""
    return bool(exception_type.strip()) and all(map(str.strip, [frame.filename
                                                                 for frame in traceback]))


def storable_record_calls(body: bytes) -> Optional[StorableCalls]:
    """What the body holds when it is nothing but valid ``record_error`` calls that can be
    stored exactly as they came; else None (the general path decides)."""
    if _ESCAPE_NEEDING_CARE.search(body):
        return None
    try:
        decoded = _DECODER.decode(body)
    except (msgspec.DecodeError, ValueError, RecursionError):  # ValueError: bad UTF-8
        return None
    calls = decoded if isinstance(decoded, list) else [decoded]
    if not calls:
        return None
    for call in calls:
        report = call.params.report
        if not _names_present(report.exception_type, report.traceback):
            return None
        if report.chained and not all(_names_present(chained.exception_type, chained.traceback)
                                      for chained in report.chained):
            return None
        if report.context and not all(math.isfinite(value) for value in report.context.values()
                                      if isinstance(value, float)):
            return None
    return StorableCalls(tuple(call.id for call in calls if call.id is not msgspec.UNSET),
                         len(calls), isinstance(decoded, list))
