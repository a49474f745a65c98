"""Errors of document ingestion; each says what is wrong with which file."""

from __future__ import annotations

from openwen.errors import InvalidRequestError, PayloadTooLargeError


class DocumentError(InvalidRequestError):
    """A file that cannot be read as the document it claims to be (corrupt, encrypted, empty,
    no text, a zip bomb)."""

    code = "invalid_document"


class UnsupportedDocumentError(InvalidRequestError):
    code = "unsupported_document_type"


class DocumentTooLargeError(PayloadTooLargeError):
    code = "document_too_large"
