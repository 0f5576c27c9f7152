"""The file of a ``multipart/form-data`` body, streamed (``datasets:upload``).

Starlette's ``request.form()`` spools a whole file to a temporary file before the caller
sees a byte, with no size limit; here python-multipart's push parser is fed the body as
it arrives and the ``file`` part's bytes are handed on chunk by chunk, so the upload
store writes them where they belong and stops at its size limit. Other form fields are
skipped (their bytes are not kept).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from .errors import invalid

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

#: The form field the Fireworks SDK sends the file in.
FILE_FIELD = b"file"


class _FilePart:
    """Parser callbacks: the ``file`` part's name and the bytes parsed since last taken."""

    def __init__(self) -> None:
        self.filename: str | None = None
        self.done = False
        self._in_file = False
        self._field = b""
        self._value = b""
        self._disposition = b""
        self._data: list[bytes] = []

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _begin(self) -> None:
        self._disposition = b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._field.lower() == b"content-disposition":
            self._disposition = self._value
        self._field, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if options.get(b"name") == FILE_FIELD and self.filename is None and not self.done:
            raw = options.get(b"filename")
            if raw is None:
                raise invalid("file: the form's file part has no filename")
            self.filename = raw.decode("utf-8", "replace").rsplit("/", 1)[-1]
            self._in_file = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._data.append(bytes(data[start:end]))

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file = False
            self.done = True

    def take(self) -> bytes:
        data, self._data = b"".join(self._data), []
        return data


def _parser(content_type: str | None, part: _FilePart) -> MultipartParser:
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise invalid("Content-Type: expected multipart/form-data with a boundary")
    return MultipartParser(boundary, part.callbacks())


def _feed(parser: MultipartParser, chunk: bytes) -> None:
    try:
        parser.write(chunk)
    except MultipartParseError as error:
        raise invalid(f"the multipart body is malformed: {error}") from None


async def form_file(
    content_type: str | None, body: AsyncIterator[bytes]
) -> tuple[str, AsyncIterator[bytes]]:
    """(the ``file`` field's file name, its bytes as they arrive); 400 when the body is
    not a form with a ``file`` part, or ends before the part does."""
    part = _FilePart()
    parser = _parser(content_type, part)
    async for chunk in body:
        _feed(parser, chunk)
        if part.filename is not None:
            break
    if part.filename is None:
        raise invalid("file: the form has no 'file' part")

    async def contents() -> AsyncIterator[bytes]:
        yield part.take()
        while not part.done:
            chunk = await anext(body, None)
            if chunk is None:
                raise invalid("file: the body ended inside the file part")
            _feed(parser, chunk)
            yield part.take()

    return part.filename, contents()
