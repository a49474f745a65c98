"""Thumbs up/down and edited answers over the web API: ``PUT /api/messages/{id}/feedback``, the
thread showing it, the next prompt continuing from the edited answer, CSRF and clear errors."""

from __future__ import annotations

from webapp_helpers import ScriptedEngine, Signed, events


def _exchange(alice: Signed) -> tuple[str, int, int]:
    cid = alice.post("/api/conversations", json={}).json()["conversation"]["id"]
    r = alice.post(f"/api/conversations/{cid}/messages", json={"content": "Capital of France?"})
    found = dict(events(r.text))
    return cid, found["start"]["user_message"]["id"], found["done"]["message"]["id"]


def test_rate_edit_and_see_it_in_the_thread(alice: Signed, engine: ScriptedEngine) -> None:
    engine.script = ["Lyon."]
    cid, question, answer = _exchange(alice)
    r = alice.put(f"/api/messages/{answer}/feedback", json={"rating": "good"})
    assert r.status_code == 200, r.text
    assert r.json()["feedback"]["rating"] == "good"
    assert r.json()["message"]["feedback"]["rating"] == "good"
    r = alice.put(f"/api/messages/{answer}/feedback", json={"edited_content": "Paris."})
    assert r.json()["feedback"] | {"updated_at": None} == {
        "rating": "good", "edited_content": "Paris.", "updated_at": None}
    thread = alice.get(f"/api/conversations/{cid}").json()["messages"]
    assert "feedback" not in thread[0]  # questions are not rated
    assert thread[1]["content"] == "Lyon."  # the original is kept
    assert thread[1]["feedback"]["edited_content"] == "Paris."
    assert thread[1]["feedback"]["rating"] == "good"
    # the conversation goes on from the edited answer
    engine.script = ["Yes."]
    r = alice.post(f"/api/conversations/{cid}/messages", json={"content": "Sure?"})
    assert r.status_code == 200
    history = [(m.role, m.content) for m in engine.requests[-1].messages if m.role != "system"]
    assert ("assistant", "Paris.") in history and ("assistant", "Lyon.") not in history
    # the thumbs toggle off; without an edit either, nothing is left
    r = alice.put(f"/api/messages/{answer}/feedback", json={"rating": None,
                                                          "edited_content": None})
    assert r.status_code == 200 and r.json()["feedback"] is None
    assert alice.get(f"/api/conversations/{cid}").json()["messages"][1]["feedback"] is None
    assert question


def test_bad_feedback_gets_clear_errors_and_changes_nothing(alice: Signed) -> None:
    cid, question, answer = _exchange(alice)
    alice.put(f"/api/messages/{answer}/feedback", json={"rating": "bad"})
    r = alice.put(f"/api/messages/{answer}/feedback", json={"rating": "great"})
    assert r.status_code == 400 and "rating" in r.json()["error"]["message"]
    r = alice.put(f"/api/messages/{answer}/feedback", json={"edited_content": "  "})
    assert r.status_code == 400 and r.json()["error"]["param"] == "edited_content"
    r = alice.put(f"/api/messages/{question}/feedback", json={"rating": "good"})
    assert r.status_code == 400 and "assistant answer" in r.json()["error"]["message"]
    r = alice.put(f"/api/messages/{answer}/feedback", json={"stars": 5})
    assert r.status_code == 400
    r = alice.put("/api/messages/999999/feedback", json={"rating": "good"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = alice.client.put(f"/api/messages/{answer}/feedback", json={"rating": "good"})  # no CSRF
    assert r.status_code == 403
    shown = alice.get(f"/api/conversations/{cid}").json()["messages"][1]["feedback"]
    assert (shown["rating"], shown["edited_content"]) == ("bad", None)


def test_another_users_answer_is_a_404(alice: Signed, bob: Signed) -> None:
    cid, _, answer = _exchange(alice)
    alice.put(f"/api/messages/{answer}/feedback", json={"rating": "good"})
    r = bob.put(f"/api/messages/{answer}/feedback", json={"rating": "bad",
                                                        "edited_content": "pwned"})
    assert r.status_code == 404
    shown = alice.get(f"/api/conversations/{cid}").json()["messages"][1]["feedback"]
    assert (shown["rating"], shown["edited_content"]) == ("good", None)
