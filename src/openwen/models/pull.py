"""Pull GGUF models from a Hugging Face-compatible hub into the local store.

``pull("qwen3:0.6b", settings)`` or ``pull("Qwen/Qwen3-0.6B-GGUF:Qwen3-0.6B-Q8_0.gguf", settings)``.
The hub protocol used:

- ``GET {endpoint}/api/models/{repo}/tree/{revision}?recursive=true``: files with ``size`` and, for
  LFS files, ``lfs.oid`` (the sha256); falls back to ``/api/models/{repo}?blobs=true`` (siblings);
- ``HEAD {endpoint}/{repo}/resolve/{revision}/{file}``: ``X-Linked-Etag`` (sha256 of an LFS file)
  and ``X-Linked-Size`` when the listing had neither;
- ``GET`` of the same URL, streamed to ``<dest>.part``, resumed with ``Range: bytes=N-`` after an
  interruption (a server that ignores ``Range`` and answers 200 restarts the file).

ModelScope (``hub = "modelscope"``, Qwen's home hub) has its own layout, used by
:class:`ModelScopeClient`:

- ``GET {endpoint}/api/v1/models/{repo}/repo/files?Revision=master&Recursive=true``:
  ``{"Code": 200, "Data": {"Files": [{"Path", "Name", "Size", "Sha256", "Type"}]}}``;
- ``GET {endpoint}/api/v1/models/{repo}/repo?Revision=master&FilePath={file}``: the file (Range
  works the same way).

The finished file is checked (size, sha256 when the hub publishes it, a readable GGUF header) and
then renamed into place atomically; a file that fails a check is deleted and
:class:`~openwen.errors.DownloadError` is raised.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import quote

import httpx

from openwen.config import Settings
from openwen.errors import DownloadError, ModelFileError, ModelNotFoundError
from openwen.models import catalog
from openwen.models.gguf_meta import read_metadata, split_info

log = logging.getLogger(__name__)

DEFAULT_REVISION = "main"
PREFERRED_QUANT = "Q4_K_M"
CHUNK_SIZE = 1 << 20
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_URL_PREFIXES = ("https://huggingface.co/", "http://huggingface.co/", "huggingface.co/", "hf.co/")
_REDIRECTS = {301, 302, 303, 307, 308}


@dataclass(frozen=True)
class PullSpec:
    """What to pull: a repository and optionally a file or a quantisation to pick by."""

    repo: str
    file: str | None = None
    quant: str | None = None
    revision: str = DEFAULT_REVISION
    catalog_name: str | None = None


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int | None = None
    sha256: str | None = None


Status = Literal["start", "download", "verify", "done", "skip"]


@dataclass(frozen=True)
class PullProgress:
    """A progress report. ``status`` is start, download, verify, done or skip (already present)."""

    file: str
    completed: int
    total: int | None
    index: int = 1
    count: int = 1
    status: Status = "download"


ProgressCallback = Callable[[PullProgress], None]
_Report = Callable[[int, int | None, Status], None]


@dataclass(frozen=True)
class PullResult:
    repo: str
    path: Path
    files: tuple[Path, ...]
    verified: bool
    downloaded: int


class _Retryable(Exception):
    """A transfer problem worth another attempt (resuming from what is on disk)."""


# -- spec parsing -------------------------------------------------------------------------------


def parse_spec(spec: str) -> PullSpec:
    """``NAME`` (catalog), ``OWNER/REPO[@REVISION][:FILE|:QUANT]`` or ``OWNER/REPO/FILE.gguf``."""
    text = spec.strip()
    entry = catalog.lookup(text)
    if entry is not None:
        return PullSpec(
            repo=entry.repo, file=entry.file, quant=entry.quant, catalog_name=entry.name
        )
    for prefix in _URL_PREFIXES:
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
            break
    repo, _, tail = text.partition(":")
    parts = [p for p in repo.split("/") if p]
    if len(parts) > 2 and parts[-1].lower().endswith(".gguf") and not tail:
        repo, tail = "/".join(parts[:2]), "/".join(parts[2:])
        parts = parts[:2]
    if len(parts) != 2:
        raise ModelNotFoundError(spec, catalog.names(), param="spec")
    repo, _, revision = "/".join(parts).partition("@")
    tail = tail.strip()
    if tail.lower().endswith(".gguf"):
        return PullSpec(repo=repo, file=tail, revision=revision or DEFAULT_REVISION)
    return PullSpec(repo=repo, quant=tail or None, revision=revision or DEFAULT_REVISION)


# -- choosing files -------------------------------------------------------------------------------


def _quant_pattern(quant: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9_]){re.escape(quant)}(?![A-Za-z0-9_])", re.IGNORECASE)


def model_choices(files: list[str]) -> list[str]:
    """GGUF files that are models (not vision projectors, not later parts of a split)."""
    choices = []
    for path in files:
        name = PurePosixPath(path).name.lower()
        if not name.endswith(".gguf") or name.startswith("mmproj"):
            continue
        info = split_info(name)
        if info is not None and info[0] != 1:
            continue
        choices.append(path)
    return sorted(choices)


def choose_file(spec: PullSpec, files: list[str]) -> str:
    """The file to pull: the requested one, else by quant, else Q4_K_M, else the only GGUF."""
    choices = model_choices(files)
    by_lower = {f.lower(): f for f in files}
    if spec.file is not None and spec.file.lower() in by_lower:
        return by_lower[spec.file.lower()]
    if spec.file is not None and spec.quant is None:
        raise DownloadError(
            f"{spec.repo} has no file '{spec.file}'; GGUF files there: "
            + (", ".join(choices) or "none")
        )
    for quant in [spec.quant] if spec.quant else [PREFERRED_QUANT]:
        hits = [f for f in choices if _quant_pattern(quant).search(PurePosixPath(f).name)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise DownloadError(
                f"{spec.repo} has several {quant} files: {', '.join(hits)}; "
                f"pull one with {spec.repo}:FILE"
            )
        if spec.quant:
            raise DownloadError(
                f"{spec.repo} has no {quant} file; GGUF files there: "
                + (", ".join(choices) or "none")
            )
    if len(choices) == 1:
        return choices[0]
    if not choices:
        raise DownloadError(f"{spec.repo} has no GGUF model files")
    raise DownloadError(
        f"{spec.repo} has several GGUF files and none is {PREFERRED_QUANT}; choose one with "
        f"{spec.repo}:FILE from: " + ", ".join(choices)
    )


def split_parts(file: str) -> list[str]:
    """All part names of a split file (``x-00001-of-00003.gguf``), or just ``[file]``."""
    info = split_info(file)
    if info is None:
        return [file]
    stem = file[: -len("-00001-of-00000.gguf")]
    return [f"{stem}-{i:05d}-of-{info[1]:05d}.gguf" for i in range(1, info[1] + 1)]


def _safe_relative(file: str) -> PurePosixPath:
    rel = PurePosixPath(file)
    if rel.is_absolute() or any(p in ("", ".", "..") for p in rel.parts) or "\\" in file:
        raise DownloadError(f"refusing to store a file with an unsafe name: {file!r}")
    return rel


# -- the hub client -------------------------------------------------------------------------------


def _normalise_etag(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip().removeprefix("W/").strip('"').lower()
    return value if _SHA256_RE.match(value) else None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class HubClient:
    """Talks to a Hugging Face-compatible hub over HTTP."""

    name = "Hugging Face"
    default_revision = DEFAULT_REVISION

    def __init__(
        self,
        endpoint: str,
        token: str | None = None,
        *,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        retry_delay: float = 1.0,
    ):
        self.endpoint = endpoint.rstrip("/")
        self.token = token
        self.retries = retries
        self.retry_delay = retry_delay
        headers = {"User-Agent": "openwen"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._own_client = client is None
        self.client = client or httpx.Client(
            headers=headers,
            follow_redirects=True,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        )
        if client is not None:
            self.client.headers.update(headers)

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # urls and errors

    def file_url(self, repo: str, file: str, revision: str = DEFAULT_REVISION) -> str:
        return f"{self.endpoint}/{repo}/resolve/{quote(revision, safe='')}/{quote(file)}"

    def revision(self, revision: str) -> str:
        """The hub's name for ``revision`` (``main`` is ModelScope's ``master``)."""
        return revision

    def _fail(self, response: httpx.Response, what: str, *, retryable: bool = False) -> None:
        """Raise the error for a failed response (:class:`_Retryable` only while downloading)."""
        status = response.status_code
        if status in (401, 403):
            hint = (
                "the hub token was rejected or has no access to it"
                if self.token
                else "it may be private or gated: set OPENWEN_HUB_TOKEN (or hub_token in the "
                "config file)"
            )
            raise DownloadError(f"the hub refused access to {what} (HTTP {status}); {hint}")
        if status == 404:
            raise DownloadError(f"{what} was not found on {self.endpoint} (HTTP 404)")
        if retryable and status == 416:
            raise _Retryable("the server rejected the resume offset (HTTP 416)")
        if retryable and (status >= 500 or status == 429):
            raise _Retryable(f"the hub answered HTTP {status} for {what}")
        raise DownloadError(f"the hub answered HTTP {status} for {what}")

    def _get(self, url: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.client.get(url, **kwargs)
        except httpx.HTTPError as exc:
            raise DownloadError(
                f"cannot reach the model hub at {self.endpoint} (no network?): {exc}") from None
        return response

    # listing

    def list_files(
        self, repo: str, revision: str = DEFAULT_REVISION
    ) -> dict[str, RemoteFile] | None:
        """Files of ``repo`` at ``revision`` with size and sha256, None if the hub has no API."""
        url = f"{self.endpoint}/api/models/{repo}/tree/{quote(revision, safe='')}"
        files: dict[str, RemoteFile] = {}
        params: dict[str, str] | None = {"recursive": "true"}
        while url:
            response = self._get(url, f"repository {repo}", params=params)
            if response.status_code == 404:
                return self._list_siblings(repo, revision)
            if response.status_code != 200:
                self._fail(response, f"repository {repo}")
            for entry in self._json(response, repo):
                if remote := _tree_entry(entry):
                    files[remote.path] = remote
            url, params = response.links.get("next", {}).get("url", ""), None
        return files

    def _list_siblings(self, repo: str, revision: str) -> dict[str, RemoteFile] | None:
        url = f"{self.endpoint}/api/models/{repo}"
        if revision != DEFAULT_REVISION:
            url += f"/revision/{quote(revision, safe='')}"
        response = self._get(url, f"repository {repo}", params={"blobs": "true"})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            self._fail(response, f"repository {repo}")
        data = self._json(response, repo)
        files = {}
        for sib in data.get("siblings", []) if isinstance(data, dict) else []:
            if isinstance(sib, dict) and "rfilename" in sib:
                lfs = sib.get("lfs") or {}
                files[sib["rfilename"]] = RemoteFile(
                    path=sib["rfilename"],
                    size=_int_or_none(lfs.get("size", sib.get("size"))),
                    sha256=_normalise_etag(lfs.get("sha256") or lfs.get("oid")),
                )
        return files

    @staticmethod
    def _json(response: httpx.Response, repo: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise DownloadError(f"the hub sent an unreadable file listing for {repo}") from None

    def head(self, repo: str, file: str, revision: str = DEFAULT_REVISION) -> RemoteFile:
        """Size and sha256 of one file from the headers of a HEAD on its resolve URL."""
        url = self.file_url(repo, file, revision)
        try:
            response = self.client.head(url, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise DownloadError(f"cannot reach the model hub at {self.endpoint}: {exc}") from None
        if response.status_code not in _REDIRECTS and response.status_code != 200:
            self._fail(response, f"{repo}/{file}")
        headers = response.headers
        size = _int_or_none(headers.get("x-linked-size"))
        if size is None and response.status_code == 200:
            size = _int_or_none(headers.get("content-length"))
        sha = _normalise_etag(headers.get("x-linked-etag")) or _normalise_etag(headers.get("etag"))
        return RemoteFile(path=file, size=size, sha256=sha)

    # downloading

    def download(
        self,
        repo: str,
        remote: RemoteFile,
        dest: Path,
        revision: str = DEFAULT_REVISION,
        report: _Report | None = None,
    ) -> int:
        """Fetch ``remote`` to ``dest`` (resuming ``dest.part``); returns bytes transferred."""
        url = self.file_url(repo, remote.path, revision)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(dest, remote.path):
            return self._download_locked(url, remote, dest, report)

    def _download_locked(self, url: str, remote: RemoteFile, dest: Path,
                         report: _Report | None) -> int:
        part = dest.with_name(dest.name + ".part")
        transferred, attempt = 0, 0
        while True:
            try:
                digest, got = self._fetch(url, part, remote, report)
                transferred += got
                break
            except _Retryable as exc:
                attempt += 1
                if attempt > self.retries:
                    raise DownloadError(
                        f"download of {remote.path} failed after {attempt} attempt(s): {exc}; "
                        f"the partial file {part} is kept, run pull again to resume"
                    ) from None
                log.warning("download of %s interrupted (%s); resuming", remote.path, exc)
                time.sleep(self.retry_delay * attempt)
        self._verify(part, remote, digest, report)
        os.replace(part, dest)
        return transferred

    def _fetch(
        self, url: str, part: Path, remote: RemoteFile, report: _Report | None
    ) -> tuple[str, int]:
        offset = part.stat().st_size if part.exists() else 0
        if remote.size is not None and offset > remote.size:
            part.unlink()
            offset = 0
        hasher = _hash_file(part) if offset else hashlib.sha256()
        if offset and offset == remote.size:
            return hasher.hexdigest(), 0
        # identity: byte offsets must be those of the file itself, never of a compressed stream
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        got = 0
        try:
            with self.client.stream("GET", url, headers=headers) as response:
                mode = self._open_mode(response, part, offset, remote)
                if mode == "wb":
                    offset, hasher = 0, hashlib.sha256()
                length = _int_or_none(response.headers.get("content-length"))
                total = offset + length if length is not None else remote.size
                if report:
                    report(offset, total, "start")
                with part.open(mode) as fh:
                    # iter_raw yields what arrived; a chunked reader would lose its buffer on a
                    # dropped connection
                    reported = 0
                    for chunk in response.iter_raw():
                        fh.write(chunk)
                        hasher.update(chunk)
                        got += len(chunk)
                        if report and (got - reported >= CHUNK_SIZE or got == length):
                            report(offset + got, total, "download")
                            reported = got
        except httpx.TransportError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None
        # A body that ended before its own length is an interruption; a complete answer of the
        # wrong size is not, and fails verification instead.
        short_body = length is not None and got < length
        unknown_end = length is None and remote.size is not None and offset + got < remote.size
        if short_body or unknown_end:
            raise _Retryable(f"the connection closed after {offset + got} bytes")
        return hasher.hexdigest(), got

    def _open_mode(
        self, response: httpx.Response, part: Path, offset: int, remote: RemoteFile
    ) -> str:
        if response.status_code == 206:
            start = _content_range_start(response.headers.get("content-range"))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Retryable(f"the server resumed at byte {start} instead of {offset}")
            return "ab"
        if response.status_code == 200:
            if offset:
                log.info("the server ignored the Range header; downloading %s again", remote.path)
            return "wb"
        if response.status_code == 416:
            part.unlink(missing_ok=True)
        self._fail(response, remote.path, retryable=True)
        raise AssertionError("unreachable")

    @staticmethod
    def _verify(part: Path, remote: RemoteFile, digest: str, report: _Report | None) -> None:
        size = part.stat().st_size
        if report:
            report(size, remote.size, "verify")
        if remote.size is not None and size != remote.size:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"{remote.path}: downloaded {size} bytes but the hub lists {remote.size}; "
                "the download was deleted, run pull again"
            )
        if remote.sha256 is not None and digest != remote.sha256:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"{remote.path}: checksum mismatch (sha256 {digest}, expected {remote.sha256}); "
                "the download was deleted, run pull again"
            )
        if remote.path.lower().endswith(".gguf"):
            try:
                read_metadata(part)
            except ModelFileError as exc:
                part.unlink(missing_ok=True)
                raise DownloadError(
                    f"{remote.path} is not a usable GGUF model ({exc.message}); "
                    "the download was deleted"
                ) from None


class ModelScopeClient(HubClient):
    """Talks to ModelScope (modelscope.cn), whose API has its own URL layout."""

    name = "ModelScope"
    default_revision = "master"

    def revision(self, revision: str) -> str:
        return "master" if revision == DEFAULT_REVISION else revision

    def file_url(self, repo: str, file: str, revision: str = DEFAULT_REVISION) -> str:
        rev = quote(self.revision(revision), safe="")
        return f"{self.endpoint}/api/v1/models/{repo}/repo?Revision={rev}&FilePath={quote(file)}"

    def list_files(
        self, repo: str, revision: str = DEFAULT_REVISION
    ) -> dict[str, RemoteFile] | None:
        url = f"{self.endpoint}/api/v1/models/{repo}/repo/files"
        params = {"Revision": self.revision(revision), "Recursive": "true"}
        response = self._get(url, f"repository {repo}", params=params)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            self._fail(response, f"repository {repo}")
        data = self._json(response, repo)
        if isinstance(data, dict) and data.get("Success") is False:
            message = str(data.get("Message") or "")
            if data.get("Code") in (404, 10010205001) or "not" in message.lower():
                return None
            raise DownloadError(f"ModelScope refused the listing of {repo}: {message}")
        listing = (data.get("Data") or {}).get("Files") if isinstance(data, dict) else None
        files: dict[str, RemoteFile] = {}
        for entry in listing or []:
            if not isinstance(entry, dict) or entry.get("Type", "blob") != "blob":
                continue
            path = entry.get("Path") or entry.get("Name")
            if isinstance(path, str):
                files[path] = RemoteFile(path=path, size=_int_or_none(entry.get("Size")),
                                         sha256=_normalise_etag(entry.get("Sha256")))
        return files

    def head(self, repo: str, file: str, revision: str = DEFAULT_REVISION) -> RemoteFile:
        listing = self.list_files(repo, revision) or {}
        if file not in listing:
            raise DownloadError(f"{repo}/{file} was not found on {self.endpoint} (HTTP 404)")
        return listing[file]


MODELSCOPE_ENDPOINT = "https://modelscope.cn"
HF_ENDPOINT = "https://huggingface.co"


@contextlib.contextmanager
def _exclusive(dest: Path, name: str) -> Iterator[None]:
    """Hold ``<dest>.lock`` while ``dest`` downloads: two processes (two server workers, or
    ``openwen pull`` beside the server) appending to one ``.part`` file would corrupt it. The
    lock file stays (removing it would let a third process lock a fresh one beside a holder)."""
    lock = dest.with_name(dest.name + ".lock")
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DownloadError(
                f"{name} is already being downloaded by another process (another server worker "
                "or `openwen pull`); wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def hub_client(settings: Settings, **kwargs: Any) -> HubClient:
    """The client for the configured hub (``hub`` and ``hub_endpoint``)."""
    token = settings.hub_token.get_secret_value() if settings.hub_token else None
    endpoint = settings.hub_endpoint
    if settings.hub == "modelscope":
        if endpoint.rstrip("/") == HF_ENDPOINT:
            endpoint = MODELSCOPE_ENDPOINT
        return ModelScopeClient(endpoint, token, **kwargs)
    return HubClient(endpoint, token, **kwargs)


def _tree_entry(entry: Any) -> RemoteFile | None:
    """A file entry of the tree listing (``lfs.oid`` is the sha256 of an LFS file)."""
    if not isinstance(entry, dict) or entry.get("type", "file") != "file" or "path" not in entry:
        return None
    lfs = entry.get("lfs") or {}
    return RemoteFile(
        path=str(entry["path"]),
        size=_int_or_none(lfs.get("size", entry.get("size"))),
        sha256=_normalise_etag(lfs.get("oid") or lfs.get("sha256")),
    )


def _content_range_start(value: str | None) -> int | None:
    match = re.match(r"bytes\s+(\d+)-", value or "")
    return int(match.group(1)) if match else None


def _hash_file(path: Path) -> Any:
    hasher = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_SIZE):
            hasher.update(chunk)
    return hasher


# -- pull -------------------------------------------------------------------------------


def _remote_files(hub: HubClient, spec: PullSpec) -> tuple[str, list[RemoteFile]]:
    listing = hub.list_files(spec.repo, spec.revision)
    if listing is None:
        if spec.file is None:
            raise DownloadError(f"repository {spec.repo} was not found on {hub.endpoint}")
        names = split_parts(spec.file)
        return spec.file, [hub.head(spec.repo, n, spec.revision) for n in names]
    chosen = choose_file(spec, list(listing))
    remotes = []
    for name in split_parts(chosen):
        if name not in listing:
            raise DownloadError(f"{spec.repo} lacks {name}, a part of the split model {chosen}")
        remote = listing[name]
        if remote.sha256 is None or remote.size is None:
            head = hub.head(spec.repo, name, spec.revision)
            remote = RemoteFile(name, remote.size or head.size, remote.sha256 or head.sha256)
        remotes.append(remote)
    return chosen, remotes


def pull(
    spec: str,
    settings: Settings,
    progress: ProgressCallback | None = None,
    *,
    client: httpx.Client | None = None,
    retries: int = 3,
    retry_delay: float = 1.0,
) -> PullResult:
    """Download the model ``spec`` names into ``settings.models_path``; returns where it went."""
    parsed = parse_spec(spec)
    with hub_client(settings, client=client, retries=retries, retry_delay=retry_delay) as hub:
        chosen, remotes = _remote_files(hub, parsed)
        repo_dir = settings.models_path.joinpath(*parsed.repo.split("/"))
        paths, downloaded = [], 0
        for index, remote in enumerate(remotes, start=1):
            dest = repo_dir.joinpath(*_safe_relative(remote.path).parts)
            paths.append(dest)
            downloaded += _pull_one(hub, parsed, remote, dest, index, len(remotes), progress)
    verified = all(r.sha256 is not None for r in remotes)
    log.info(
        "pulled %s:%s to %s (sha256 %s)",
        parsed.repo,
        chosen,
        paths[0],
        "verified" if verified else "not published",
    )
    return PullResult(
        repo=parsed.repo,
        path=paths[0],
        files=tuple(paths),
        verified=verified,
        downloaded=downloaded,
    )


def _check_space(remote: RemoteFile, dest: Path) -> None:
    """Fail before downloading when the disk cannot hold what is left of the file."""
    if remote.size is None:
        return
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dest.parent).free
    if remote.size - have > free:
        raise DownloadError(
            f"not enough disk space for {remote.path}: it needs {remote.size - have} more bytes "
            f"and {dest.parent} has {free} free"
        )


def _pull_one(
    hub: HubClient,
    spec: PullSpec,
    remote: RemoteFile,
    dest: Path,
    index: int,
    count: int,
    progress: ProgressCallback | None,
) -> int:
    def report(done: int, total: int | None, status: Status) -> None:
        if progress is not None:
            progress(PullProgress(remote.path, done, total, index, count, status))

    if dest.is_file() and remote.size is not None and dest.stat().st_size == remote.size:
        report(remote.size, remote.size, "skip")
        return 0
    _check_space(remote, dest)
    got = hub.download(spec.repo, remote, dest, spec.revision, report)
    size = dest.stat().st_size
    report(size, size, "done")
    return got
