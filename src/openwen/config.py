"""Settings: environment (``OPENWEN_*``) beats the config file beats defaults.

The config file is TOML, found at ``$OPENWEN_CONFIG`` or ``<config home>/openwen/config.toml``
(``$XDG_CONFIG_HOME`` or ``~/.config``). Data lives under ``$OPENWEN_HOME`` or
``<XDG data home>/openwen`` (``$XDG_DATA_HOME`` or ``~/.local/share``).

Keys in the file use the field names below (``port = 8800``); nested tables are flattened with an
underscore (``[remote] base_url = ...`` is ``remote_base_url``). Environment variables are the
upper-case
field name with the ``OPENWEN_`` prefix (``OPENWEN_REMOTE_BASE_URL``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from openwen.errors import ConfigError

ENV_PREFIX = "OPENWEN_"
Source = Literal["default", "file", "env"]


class UpstreamConfig(BaseModel):
    """One OpenAI-compatible upstream (a ``[[engines]]`` table): where it is, which models it
    serves (empty: whatever its ``/models`` lists), which embedding models, and timeouts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("remote", min_length=1, max_length=64)
    base_url: str = Field(pattern=r"^https?://")
    api_key: SecretStr | None = None
    models: tuple[str, ...] = ()
    embedding_models: tuple[str, ...] = ()
    timeout: float = Field(600.0, gt=0)
    connect_timeout: float = Field(10.0, gt=0)
    retries: int = Field(2, ge=0, le=10)


class Settings(BaseModel):
    """Every setting openwen reads. Field docs are shown by ``openwen config``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Field(default_factory=lambda: data_home(os.environ), description="data directory")
    model: str = Field("smollm2", description="default chat model (name or path)")
    models_dir: Path | None = Field(None, description="local model store (default <home>/models)")
    n_threads: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=1, le=512,
                           description="CPU threads for the embedded engine")
    adaptive_threads: bool = Field(True, description="the batched engine drops to one thread "
                                   "while other processes take the cores, and back when they "
                                   "are free (measured from its own step times)")
    n_ctx: int = Field(8192, ge=256, le=1_048_576, description="context size in tokens")
    n_batch: int = Field(512, ge=8, le=65536, description="prompt batch size in tokens")
    n_ubatch: int = Field(512, ge=8, le=65536, description="tokens llama.cpp evaluates at once "
                          "within a batch (the batched engine; at most n_batch)")

    embedded_engine: Literal["batched", "simple"] = Field(
        "batched", description="embedded engine: batched (concurrent requests, prefix cache) "
        "or simple (one request at a time)")
    kv_slots: int = Field(8, ge=1, le=256,
                          description="requests the batched engine decodes at once")
    kv_cells: int = Field(0, ge=0, description="live KV cache cells shared by those requests "
                          "(0: n_ctx)")
    prefill_chunk: int = Field(128, ge=16, description="prompt tokens read per step while others "
                               "stream")
    kv_ram_mb: int = Field(1024, ge=0, description="RAM for KV states of idle conversations")
    kv_cache_dir_mb: int = Field(2048, ge=0, description="disk for KV states of long "
                                 "conversations under <home>/kvcache (0: off)")
    engine: Literal["embedded", "remote"] = Field("embedded", description="default engine")
    remote_base_url: str | None = Field(None, description="OpenAI-compatible upstream base URL")
    remote_api_key: SecretStr | None = Field(None, description="API key for the upstream")
    remote_model: str | None = Field(None, description="model id at the upstream")
    remote_timeout: float = Field(600.0, gt=0, description="upstream read timeout, seconds")
    remote_connect_timeout: float = Field(10.0, gt=0, description="upstream connect timeout")
    remote_retries: int = Field(2, ge=0, le=10, description="retries on connection errors only")
    engines: tuple[UpstreamConfig, ...] = Field((), description="upstreams: [[engines]] tables "
                                                "(name, base_url, api_key, models, "
                                                "embedding_models, timeout, connect_timeout, "
                                                "retries); env: a JSON list")
    upstream_check_interval: float = Field(5.0, gt=0, description="seconds between health "
                                           "checks of the upstreams")
    local_models: bool = Field(True, description="serve local GGUF models and embeddings "
                               "(false: a slim gateway that only relays to upstreams)")

    hub: Literal["huggingface", "modelscope"] = Field(
        "huggingface", description="model hub layout: huggingface (also its mirrors, set "
        "hub_endpoint) or modelscope")
    hub_endpoint: str = Field("https://huggingface.co", description="model hub for `openwen pull` "
                              "(with hub = modelscope this default means https://modelscope.cn)")
    hub_token: SecretStr | None = Field(None, description="token for the model hub")

    host: str = Field("127.0.0.1", description="address `openwen serve` binds")
    port: int = Field(8800, ge=1, le=65535, description="port `openwen serve` binds")
    ollama_port: int | None = Field(
        None, ge=1, le=65535, description="a second port `openwen serve` binds (on the same "
        "host) for Ollama clients, e.g. 11434: the Ollama and /v1 APIs at its root, no web app")
    require_api_key: bool = Field(False, description="require API keys on loopback too")
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="largest request body")
    max_queue: int = Field(16, ge=1, le=10_000, description="requests waiting per engine")
    database_url: str | None = Field(None, description="SQLAlchemy URL (default SQLite in home)")
    # request security (openwen.server.guard, openwen.server.auth)
    allowed_hosts: str = Field("", description="Host names the server answers besides loopback "
                               "ones, when API keys are not required (a,b)")
    allowed_origins: str = Field("", description="web origins (https://app.example) whose pages "
                                 "may call the API from a browser (CORS), comma-separated")
    api_server_tools: bool = Field(False, description="let API keys with the 'tools' scope run "
                                   "openwen's server-side tools (\"openwen\": {\"tools\": ...})")
    forwarded_allow_ips: str = Field("", description="proxy addresses whose X-Forwarded-For / "
                                     "-Proto headers are trusted (a,b; empty: none)")
    api_docs: bool = Field(True, description="serve the interactive API docs at /docs")
    single_user: bool = Field(False, description="no login (loopback only)")
    instance_lease: float = Field(20.0, ge=2, le=3600, description="seconds without a "
                                  "heartbeat after which an instance counts as dead and its "
                                  "partial answers are marked incomplete by a survivor")
    embedding_model: str = Field("all-minilm-l6-v2", description="local embedding model")
    document_max_bytes: int = Field(50 * 1024 * 1024, ge=1024,
                                    description="largest document `docs add` accepts")
    users_may_pull: bool = Field(False, description="let every user, not only admins, download "
                                 "and remove models in the web app (admins can switch it)")
    memory_auto_extract: bool = Field(False, description="extract memories from chats "
                                      "automatically (users may switch it)")
    responses_retention_days: float = Field(30.0, ge=0, description="days stored Responses "
                                            "API responses are kept (0: forever)")

    # tools and agents (openwen.tools, openwen.chat.agent)
    agent_max_steps: int = Field(8, ge=1, le=100,
                                 description="model rounds with tool calls per agent turn")
    tool_timeout: float = Field(60.0, gt=0, description="seconds one tool call may take")
    tools_confirm: str = Field("side-effects", description="tools that need the user's "
                               "confirmation: side-effects, all, none, or tool names (a,b)")
    fetch_allow_networks: str = Field("", description="CIDRs fetch_url and web_search may reach "
                                      "although private or loopback (127.0.0.1/32,10.0.0.0/8)")
    fetch_timeout: float = Field(20.0, gt=0, description="seconds one URL fetch may take")
    fetch_max_bytes: int = Field(2_000_000, ge=1024, description="largest body fetch_url reads")
    searxng_url: str | None = Field(None, description="SearXNG base URL for the web_search tool")
    sandbox_wall_seconds: float = Field(30.0, gt=0, description="code interpreter wall-clock limit")
    sandbox_cpu_seconds: int = Field(10, ge=1, description="code interpreter CPU-time limit")
    sandbox_memory_mb: int = Field(1024, ge=64, description="code interpreter memory limit, MiB")
    sandbox_max_processes: int = Field(32, ge=1, le=4096,
                                       description="code interpreter processes and threads")
    sandbox_max_concurrent: int = Field(2, ge=1, le=256,
                                        description="code interpreter runs at once")
    sandbox_max_queued: int = Field(8, ge=0, le=10_000, description="code interpreter runs "
                                    "waiting for a slot; more are refused as busy")
    sandbox_cgroup: str = Field("auto", description="per-run cgroup for the code interpreter: "
                                "auto, off, or the path of a delegated cgroup v2 group")
    # fine-tuning (openwen.tune)
    tune_users: Literal["admins", "everyone", "nobody"] = Field(
        "admins", description="who may train derivatives from the web app: admins, everyone "
        "or nobody (the CLI on the machine always may)")
    tune_min_free_mb: int = Field(256, ge=0, description="free disk space, MiB, a training job "
                                  "needs beyond its adapter")
    tune_threads: int = Field(0, ge=0, le=512, description="CPU threads for training "
                              "(0: n_threads)")
    mcp: dict[str, Any] = Field(default_factory=dict, description="MCP servers: "
                                "[mcp.servers.NAME] tables (see openwen.tools.mcp)")

    @field_validator("engines", mode="before")
    @classmethod
    def _engines_from_json(cls, value: Any) -> Any:
        """``OPENWEN_ENGINES`` holds the same list as JSON text."""
        if isinstance(value, str):
            import json

            try:
                return json.loads(value) if value.strip() else ()
            except ValueError as exc:
                raise ValueError(f"engines must be a list of tables or JSON: {exc}") from None
        return value

    @field_validator("mcp", mode="before")
    @classmethod
    def _mcp_from_json(cls, value: Any) -> Any:
        """``OPENWEN_MCP`` holds the same shape as JSON text."""
        if isinstance(value, str):
            import json

            try:
                return json.loads(value) if value.strip() else {}
            except ValueError as exc:
                raise ValueError(f"mcp must be a table or JSON object: {exc}") from None
        return value

    @property
    def models_path(self) -> Path:
        return self.models_dir or self.home / "models"

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'openwen.db'}"


@dataclass(frozen=True)
class LoadedSettings:
    """Settings plus where each value came from, and the config file consulted."""

    settings: Settings
    sources: dict[str, Source]
    config_file: Path


def config_file_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if path := env.get(ENV_PREFIX + "CONFIG"):
        return Path(path).expanduser()
    xdg = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "openwen" / "config.toml"


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}".replace("-", "_")
        if isinstance(value, dict) and name not in Settings.model_fields:
            flat.update(_flatten(value, name + "_"))
        else:
            flat[name] = value
    return flat


def read_config_file(path: Path) -> dict[str, Any]:
    """Read the TOML config file; a missing file is empty, a broken one is a clear error."""
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    flat = _flatten(data)
    unknown = sorted(set(flat) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    return flat


def read_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in Settings.model_fields:
        key = ENV_PREFIX + name.upper()
        if key in env and env[key] != "":
            values[name] = env[key]
    return values


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> LoadedSettings:
    """Build settings from defaults, the config file, the environment and explicit overrides."""
    env = dict(os.environ if env is None else env)
    path = config_file_path(env)
    file_values = read_config_file(path)
    env_values = read_env(env)
    merged: dict[str, Any] = {**file_values, **env_values, **overrides}
    sources: dict[str, Source] = {name: "default" for name in Settings.model_fields}
    sources.update({k: "file" for k in file_values})
    sources.update({k: "env" for k in env_values})
    sources.update({k: "env" for k in overrides})
    if "home" not in merged:
        merged["home"] = data_home(env)
    try:
        settings = Settings(**merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc
    return LoadedSettings(settings=settings, sources=sources, config_file=path)


def data_home(env: Mapping[str, str]) -> Path:
    """``$OPENWEN_HOME``, else ``<XDG data home>/openwen``."""
    if home := env.get(ENV_PREFIX + "HOME"):
        return Path(home).expanduser()
    xdg = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "openwen"


def get_settings() -> Settings:
    return load_settings().settings
