"""Errors of document ingestion; each says what is wrong with which file."""

from __future__ import annotations

import time

from openwen.errors import InvalidRequestError, PayloadTooLargeError


class DocumentError(InvalidRequestError):
    """A file that cannot be read as the document it claims to be (corrupt, encrypted, empty,
    no text, a zip bomb)."""

    code = "invalid_document"


class UnsupportedDocumentError(InvalidRequestError):
    code = "unsupported_document_type"


class DocumentTooLargeError(PayloadTooLargeError):
    code = "document_too_large"


class DocumentTimeoutError(DocumentError):
    """Parsing and chunking took longer than ``parse_seconds`` (the file is refused, nothing
    is stored)."""

    code = "document_too_complex"


class Deadline:
    """A time budget checked between steps of parsing and chunking (every step is linear in
    its input, so a check between steps bounds the whole)."""

    def __init__(self, seconds: float, label: str):
        self.seconds = seconds
        self.label = label
        self.end = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise DocumentTimeoutError(
                f"{self.label}: reading this file took more than {self.seconds:g} s "
                "(setting parse_seconds); it is refused", param="file")


NO_DEADLINE = Deadline(float("inf"), "document")
