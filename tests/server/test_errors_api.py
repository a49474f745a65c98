"""Bad input gets an OpenAI error object with the right status, never a 500."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from serverkit import RunningServer

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Say hello."}]


def assert_error(response: httpx.Response, status: int, *, param: str | None = None,
                 code: str | None = None) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    return error  # type: ignore[no-any-return]


def post(http: httpx.Client, content: bytes, path: str = "/v1/chat/completions",
         content_type: str = "application/json") -> httpx.Response:
    return http.post(path, content=content, headers={"content-type": content_type})


def test_malformed_json(http: httpx.Client) -> None:
    error = assert_error(post(http, b'{"messages": [{"role": "user", "content": "hi"}'), 400,
                         code="invalid_json")
    assert error["type"] == "invalid_request_error"
    assert "JSON" in str(error["message"])


def test_invalid_utf8(http: httpx.Client) -> None:
    body = b'{"messages": [{"role": "user", "content": "caf\xe9"}]}'
    assert_error(post(http, body), 400, code="invalid_json")


@pytest.mark.parametrize("body", [b"", b"[]", b"null", b'"text"'])
def test_body_that_is_not_an_object(http: httpx.Client, body: bytes) -> None:
    assert_error(post(http, body), 400)


@pytest.mark.parametrize(("fields", "param"), [
    ({"messages": "hello"}, "messages"),
    ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
    ({"messages": HELLO, "temperature": "hot"}, "temperature"),
    ({"messages": HELLO, "stream": "yes please"}, "stream"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    ({"messages": HELLO, "max_tokens": -5}, "max_tokens"),
    ({"messages": HELLO, "max_tokens": 0}, "max_tokens"),
    ({"messages": HELLO, "n": 3}, "n"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://example.invalid/cat.png"}}]}]},
     "messages[0].content[0]"),
])
def test_invalid_fields_name_the_param(http: httpx.Client, fields: dict[str, object],
                                       param: str) -> None:
    assert_error(http.post("/v1/chat/completions", json=fields), 400, param=param)


def test_missing_messages(http: httpx.Client) -> None:
    assert_error(http.post("/v1/chat/completions", json={"model": "smollm2"}), 400,
                 param="messages", code="missing_required_parameter")


def test_empty_messages(http: httpx.Client) -> None:
    assert_error(http.post("/v1/chat/completions", json={"messages": []}), 400,
                 param="messages")


def test_form_content_type_is_refused_with_415(http: httpx.Client) -> None:
    """``curl -d`` sends application/x-www-form-urlencoded, which a browser may send cross-site
    without a preflight: JSON bodies must say so (issue 10, finding 2)."""
    body = json.dumps({"messages": HELLO, "max_tokens": 2}).encode()
    response = post(http, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415, response.text
    assert "application/json" in response.json()["error"]["message"]


def test_prompt_longer_than_context(http: httpx.Client) -> None:
    long = [{"role": "user", "content": "lorem ipsum " * 3000}]
    assert_error(http.post("/v1/chat/completions", json={"messages": long}), 400,
                 param="messages", code="context_length_exceeded")


def test_ten_thousand_messages(http: httpx.Client) -> None:
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}"}
                for i in range(10_000)]
    response = http.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 1})
    assert_error(response, 400, code="context_length_exceeded")


def test_body_over_the_limit(api: RunningServer, http: httpx.Client) -> None:
    limit = api.app.state.settings.max_body_bytes
    big = b'{"messages": [{"role": "user", "content": "' + b"a" * (50 * 1024 * 1024) + b'"}]}'
    assert len(big) > limit
    assert_error(post(http, big), 413, code="payload_too_large")
    # the connection stays usable
    assert http.get("/health").status_code == 200


def test_chunked_body_over_the_limit_without_content_length(api: RunningServer,
                                                             http: httpx.Client) -> None:
    limit = api.app.state.settings.max_body_bytes

    def body() -> object:
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(limit // 65536 + 2):
            yield b"a" * 65536
        yield b'"}]}'

    response = http.post("/v1/chat/completions", content=body(),  # type: ignore[arg-type]
                         headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_error(response, 413, code="payload_too_large")


def test_unknown_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=HELLO)  # type: ignore[arg-type]
    error = info.value.body
    assert isinstance(error, dict)
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "smollm2" in error["message"]  # the message lists what is available


def test_unknown_model_when_streaming_is_a_404_not_a_stream(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions",
                         json={"model": "nope", "messages": HELLO, "stream": True})
    assert_error(response, 404, param="model", code="model_not_found")


def test_context_error_when_streaming_is_a_400(http: httpx.Client) -> None:
    long = [{"role": "user", "content": "lorem ipsum " * 3000}]
    response = http.post("/v1/chat/completions", json={"messages": long, "stream": True})
    assert_error(response, 400, code="context_length_exceeded")


def test_bad_json_schema_is_a_400(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", json={
        "messages": HELLO, "response_format": {
            "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}})
    assert_error(response, 400, param="response_format")


def test_unknown_route_and_method(http: httpx.Client) -> None:
    assert_error(http.post("/v1/nothing-here", json={}), 404)
    assert_error(http.get("/v1/chat/completions"), 405)


def test_sdk_raises_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="smollm2", messages=HELLO,  # type: ignore[arg-type]
                                       temperature=5)
    assert info.value.status_code == 400
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "temperature"


def test_no_500_was_served(api: RunningServer, http: httpx.Client) -> None:
    metrics = http.get("/metrics").text
    served = [line for line in metrics.splitlines()
              if line.startswith("openwen_requests_total{")]
    assert served
    assert not [line for line in served if 'status="5' in line]
