"""openwen as the upstream of another openwen: a remote engine served through the same API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from serverkit import RunningServer, running_server, server_settings

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def proxy(api: RunningServer, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[RunningServer]:
    """A second server whose engine is the first server, reached over HTTP."""
    settings = server_settings(Path(tmp_path_factory.mktemp("proxy")), engine="remote",
                               remote_base_url=api.v1, remote_model="smollm2",
                               remote_api_key="unused")
    with running_server(settings) as server:
        yield server


def test_models_come_from_the_upstream(proxy: RunningServer) -> None:
    assert "smollm2" in [m.id for m in proxy.client().models.list()]


def test_answers_match_the_upstream(api: RunningServer, proxy: RunningServer) -> None:
    direct = api.client().chat.completions.create(
        model="smollm2", messages=QUESTION, max_tokens=6, temperature=0)  # type: ignore[arg-type]
    relayed = proxy.client().chat.completions.create(
        model="smollm2", messages=QUESTION, max_tokens=6, temperature=0)  # type: ignore[arg-type]
    assert relayed.choices[0].message.content == direct.choices[0].message.content
    assert relayed.usage is not None and direct.usage is not None
    assert relayed.usage.prompt_tokens == direct.usage.prompt_tokens
    assert relayed.model == "smollm2"


def test_streaming_through_the_upstream(proxy: RunningServer) -> None:
    stream = proxy.client().chat.completions.create(
        model="smollm2", messages=QUESTION, max_tokens=6, temperature=0,  # type: ignore[arg-type]
        stream=True, stream_options={"include_usage": True}, logprobs=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and 1 <= chunks[-1].usage.completion_tokens <= 6


def test_upstream_errors_keep_their_status(proxy: RunningServer) -> None:
    long = [{"role": "user", "content": "lorem ipsum " * 3000}]
    with pytest.raises(openai.BadRequestError) as info:
        proxy.client().chat.completions.create(model="smollm2", messages=long)  # type: ignore[arg-type]
    assert "context" in str(info.value.body)
