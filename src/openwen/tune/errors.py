"""Errors of the tuning package (all map to HTTP 400 unless said otherwise)."""

from __future__ import annotations

from openwen.errors import InvalidRequestError, NotFoundError


class DatasetError(InvalidRequestError):
    """The dataset cannot be used; the message names the line when one is at fault."""

    code = "invalid_dataset"

    def __init__(self, message: str, *, line: int | None = None):
        super().__init__(f"line {line}: {message}" if line is not None else message,
                         param="data")
        self.line = line


class TuneError(InvalidRequestError):
    """A training job cannot be created or changed as asked."""

    code = "invalid_tune_job"


class JobNotFoundError(NotFoundError):
    code = "tune_job_not_found"

    def __init__(self, name: str, known: list[str]):
        hint = f"; known jobs: {', '.join(known)}" if known else "; no jobs yet"
        super().__init__(f"no training job named '{name}'{hint}", param="name")
