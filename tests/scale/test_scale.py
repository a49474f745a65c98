"""Scale-out, end to end: two openwen instances with no local model on PostgreSQL, behind a real
HAProxy (round robin, no stickiness, health checks), in front of a real upstream (openwen in
engine role serving the bundled model). Requests alternate between instances; a stop or a
follow on one instance reaches an answer another writes; a SIGKILLed instance's partial answer
is marked by the survivor within the lease; a restart leaves others' live answers alone; failed
logins count across instances; an upstream that dies gives clear errors and comes back.

The scenarios share one cluster and run in file order."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cluster import LEASE, sse_events

from conftest import Cluster

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PASSWORD = "correct horse battery"
LONG = "Write a very long story about a dragon, at least 2000 words."  # runs to max_tokens
WAIT = 60.0  # safety nets, not timing assertions
MARK_BOUND = LEASE * 1.25 + 5  # the survivor marks a dead instance's answers within this


@dataclass
class User:
    """A signed-in browser: one cookie jar, talking to the balancer or to one instance."""

    client: httpx.Client
    csrf: str
    served_by: list[str] = field(default_factory=list)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, url, headers={"X-CSRF-Token": self.csrf},
                                       **kwargs)
        self.served_by.append(response.headers.get("x-openwen-instance", "?"))
        return response

    def conversation(self, max_tokens: int) -> str:
        r = self.request("POST", "/api/conversations",
                         json={"settings": {"max_tokens": max_tokens, "tools": False}})
        assert r.status_code == 201, r.text
        return str(r.json()["conversation"]["id"])

    def ask(self, cid: str, content: str, base: str = "") -> tuple[str, dict[str, Any]]:
        """Send and read the whole answer; (instance id, the done/error event's data)."""
        url = f"{base}/api/conversations/{cid}/messages"
        with self.client.stream("POST", url, json={"content": content},
                                headers={"X-CSRF-Token": self.csrf}) as r:
            assert r.status_code == 200, r.read()
            served = r.headers["x-openwen-instance"]
            self.served_by.append(served)
            for name, data in sse_events(r):
                if name in ("done", "error"):
                    return served, {"event": name, **data}
        raise AssertionError("the answer stream ended without done or error")

    def message(self, message_id: int, base: str = "") -> dict[str, Any]:
        r = self.request("GET", f"{base}/api/messages/{message_id}")
        assert r.status_code == 200, r.text
        return dict(r.json()["message"])


class Background:
    """An answer streaming in a thread: its instance, message id, text so far, and end."""

    def __init__(self, user: User, cid: str, content: str, base: str = ""):
        self.served: str | None = None
        self.message_id: int | None = None
        self.text = ""
        self.end: dict[str, Any] | None = None
        self.broken = False
        self.started = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(user, cid, content, base),
                                        daemon=True)
        self._thread.start()

    def _read(self, user: User, cid: str, content: str, base: str) -> None:
        try:
            with user.client.stream("POST", f"{base}/api/conversations/{cid}/messages",
                                    json={"content": content},
                                    headers={"X-CSRF-Token": user.csrf}) as r:
                self.served = r.headers.get("x-openwen-instance")
                for name, data in sse_events(r):
                    if name == "start":
                        self.message_id = data["message"]["id"]
                        self.started.set()
                    elif name == "text":
                        self.text += data["text"]
                    elif name in ("done", "error"):
                        self.end = {"event": name, **data}
        except httpx.HTTPError:
            self.broken = True
        finally:
            self.started.set()

    def wait_for_text(self, chars: int) -> None:
        deadline = time.monotonic() + WAIT
        while len(self.text) < chars and time.monotonic() < deadline and self.end is None:
            time.sleep(0.05)
        assert len(self.text) >= chars, (self.text, self.end, self.broken)

    def join(self) -> None:
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "the answer stream hung"


def wait_until(check: Any, what: str, limit: float = WAIT) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {limit:.0f} s: {what}")


def instance_ids(cluster: Cluster) -> dict[str, str]:
    """Instance name (a, b) -> the id it puts in X-Openwen-Instance."""
    return {name: httpx.get(f"{cluster.instance_url(name)}/api/session")
            .headers["x-openwen-instance"] for name in cluster.instances}


@pytest.fixture(scope="module")
def alice(cluster: Cluster) -> Iterator[User]:
    client = httpx.Client(base_url=cluster.url, timeout=60)
    token = client.get("/api/session").json()["csrf_token"]
    r = client.post("/api/auth/signup", json={"username": "alice", "password": PASSWORD},
                    headers={"X-CSRF-Token": token})
    assert r.status_code == 201, r.text
    user = User(client, r.json()["csrf_token"])
    yield user
    client.close()


def test_chat_through_the_balancer_alternates_instances(cluster: Cluster, alice: User) -> None:
    cid = alice.conversation(max_tokens=12)
    answered_by = set()
    for question in ("Say hello.", "Say hi again.", "Name a colour.", "Name a fruit."):
        served, end = alice.ask(cid, question)
        answered_by.add(served)
        assert end["event"] == "done" and end["status"] == "complete", end
        assert end["message"]["content"].strip()
    ids = instance_ids(cluster)
    assert set(alice.served_by) >= set(ids.values())  # both instances served this user
    r = alice.request("GET", f"/api/conversations/{cid}")
    thread = r.json()["messages"]
    assert [m["role"] for m in thread] == ["user", "assistant"] * 4
    assert all(m["status"] == "complete" for m in thread)
    # the models list is the upstream's, through either instance
    for name in cluster.instances:
        models = httpx.get(f"{cluster.instance_url(name)}/v1/models").json()["data"]
        assert {"smollm2", "all-minilm-l6-v2"} <= {m["id"] for m in models}
        assert all(m["available"] for m in models)


def other(cluster: Cluster, served: str) -> str:
    """The name of the instance that did not serve ``served``."""
    ids = instance_ids(cluster)
    return next(name for name, i in ids.items() if i != served)


def test_stop_and_follow_from_the_other_instance(cluster: Cluster, alice: User) -> None:
    cid = alice.conversation(max_tokens=1500)
    answer = Background(alice, cid, LONG)
    answer.wait_for_text(20)
    assert answer.served is not None and answer.message_id is not None
    elsewhere = cluster.instance_url(other(cluster, answer.served))
    # follow: the other instance sees the answer grow while it streams
    seen = [alice.message(answer.message_id, elsewhere)]
    wait_until(lambda: len(alice.message(answer.message_id, elsewhere)["content"])
               > len(seen[0]["content"]), "the other instance follows the answer")
    assert alice.message(answer.message_id, elsewhere)["status"] == "streaming"
    # stop: pressed on the other instance, it stops the stream on the writer
    r = alice.request("POST", f"{elsewhere}/api/messages/{answer.message_id}/stop")
    assert r.status_code == 200, r.text
    assert r.json()["stopped"] is True
    answer.join()
    assert answer.end is not None and answer.end["status"] == "incomplete", answer.end
    stored = alice.message(answer.message_id)
    assert stored["status"] == "incomplete"
    assert stored["content"] == answer.end["message"]["content"]
    assert stored["content"].startswith(answer.text[: len(stored["content"]) // 2])


def test_five_failed_logins_over_both_instances_lock_the_account(cluster: Cluster) -> None:
    urls = [cluster.instance_url(name) for name in cluster.instances]
    statuses = []
    for attempt in range(5):
        client = httpx.Client(base_url=urls[attempt % 2], timeout=30)
        token = client.get("/api/session").json()["csrf_token"]
        r = client.post("/api/auth/login", json={"username": "alice", "password": "wrong"},
                        headers={"X-CSRF-Token": token})
        statuses.append(r.status_code)
        client.close()
    assert statuses == [401] * 5, statuses  # each attempt is counted before it is checked
    for url in urls:  # now locked on every instance, even with the right password
        client = httpx.Client(base_url=url, timeout=30)
        token = client.get("/api/session").json()["csrf_token"]
        r = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD},
                        headers={"X-CSRF-Token": token})
        assert r.status_code == 429, r.text
        assert int(r.headers["retry-after"]) > 0
        client.close()


def test_a_killed_instance_is_failed_over_and_its_answer_marked(cluster: Cluster,
                                                                alice: User) -> None:
    ids = instance_ids(cluster)
    cid = alice.conversation(max_tokens=1500)
    answer = Background(alice, cid, LONG)
    answer.wait_for_text(40)
    victim = next(name for name, i in ids.items() if i == answer.served)
    survivor = next(name for name in ids if name != victim)
    survivor_url = cluster.instance_url(survivor)
    time.sleep(1.2)  # let an autosave land (every 0.5 s)
    cluster.instances[victim].kill()
    killed_at = time.monotonic()
    answer.join()
    assert answer.end is None  # the stream broke; nothing finished it
    assert answer.message_id is not None
    # the balancer fails over: new requests are served by the survivor
    wait_until(lambda: alice.request("GET", "/api/conversations").status_code == 200,
               "the balancer serves again")
    for _ in range(3):
        assert alice.request("GET", "/api/conversations").headers[
            "x-openwen-instance"] == ids[survivor]
    # the survivor marks the partial answer within the bound; the question and text are kept
    marked = wait_until(lambda: (m := alice.message(answer.message_id, survivor_url))
                        ["status"] != "streaming" and m, "the partial answer is marked",
                        limit=MARK_BOUND + 10)
    assert time.monotonic() - killed_at <= MARK_BOUND + 10
    assert marked["status"] == "incomplete"
    assert marked["content"] and answer.text.startswith(marked["content"][:20])
    thread = alice.request("GET", f"/api/conversations/{cid}").json()["messages"]
    assert thread[0]["content"] == LONG and thread[1]["id"] == answer.message_id

    # restart the victim while the survivor writes an answer: that answer is left alone
    live_cid = alice.conversation(max_tokens=1500)
    live = Background(alice, live_cid, LONG, base=survivor_url)
    live.wait_for_text(20)
    cluster.instances[victim].start()
    victim_url = cluster.instance_url(victim)
    time.sleep(1.0)
    assert live.message_id is not None
    assert alice.message(live.message_id, victim_url)["status"] == "streaming"
    assert live.end is None
    r = alice.request("POST", f"{victim_url}/api/messages/{live.message_id}/stop")
    assert r.json()["stopped"] is True
    live.join()
    assert live.end is not None and live.end["status"] == "incomplete"
    served = {alice.request("GET", "/api/conversations").headers["x-openwen-instance"]
              for _ in range(6)}
    assert len(served) == 2  # the restarted instance is back in the rotation


def test_upstream_killed_and_restarted(cluster: Cluster, alice: User) -> None:
    cid = alice.conversation(max_tokens=8)
    cluster.upstream.kill()
    # while it is down: a clear error, and the models show as unavailable
    served, end = alice.ask(cid, "Say hello.")
    assert end["event"] == "error", end
    assert "upstream" in end["error"]["message"] or "unavailable" in end["error"]["message"]
    for name in cluster.instances:
        url = cluster.instance_url(name)
        wait_until(lambda u=url: not next(m for m in httpx.get(f"{u}/v1/models").json()["data"]
                                          if m["id"] == "smollm2")["available"],
                   "the model shows as unavailable")
    r = httpx.post(f"{cluster.url}/v1/chat/completions", timeout=30,
                   json={"model": "smollm2", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) >= 1
    assert "unavailable" in r.json()["error"]["message"]
    # back: the health check brings the models back, and answers work again
    cluster.upstream.start()
    for name in cluster.instances:
        url = cluster.instance_url(name)
        wait_until(lambda u=url: next(m for m in httpx.get(f"{u}/v1/models").json()["data"]
                                      if m["id"] == "smollm2")["available"],
                   "the model is available again")
    served, end = alice.ask(cid, "Say hello.")
    assert end["event"] == "done" and end["status"] == "complete", end
