"""HTTP API for documents, collections, search and memories, scoped to the requesting user.

    router = create_knowledge_router(user_id=current_user_id, knowledge=get_knowledge_base)
    app.include_router(router)                       # under /api/knowledge

``user_id`` and ``knowledge`` are FastAPI dependencies the app supplies: the signed-in user's id
(``int``) and the process's :class:`KnowledgeBase`. Every route acts only on that user's data;
another user's ids answer 404 exactly like missing ones. Errors are openwen errors, turned into
OpenAI-style error objects by the app's handlers.

Uploads are the raw file as the request body (``POST /documents?filename=report.pdf``, any
content type), streamed to a temporary file and counted, so nothing larger than
``document_max_bytes`` is ever held, even in memory. (The app's global body limit must let this
route through: see ``upload_path``.)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from openwen.errors import InvalidRequestError
from openwen.knowledge import KnowledgeBase, Scope
from openwen.knowledge.errors import DocumentTooLargeError
from openwen.knowledge.parse import kind_of
from openwen.server.guard import route_policy

PREFIX = "/api/knowledge"
upload_path = PREFIX + "/documents"  # POST here carries a whole file (exempt it from body limits)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchBody(_Body):
    query: str = Field(min_length=1, max_length=4000)
    collection: str | None = None
    conversation_id: str | None = None
    limit: int = Field(5, ge=1, le=100)
    mode: Literal["hybrid", "fulltext", "vector"] = "hybrid"


class ContextBody(_Body):
    query: str = Field(min_length=1, max_length=20_000)
    collection: str | None = None
    conversation_id: str | None = None
    mode: Literal["auto", "chunks", "whole"] = "auto"


class CollectionBody(_Body):
    name: str = Field(min_length=1, max_length=100)


class MemoryBody(_Body):
    text: str = Field(min_length=1, max_length=1000)


class MemorySettingsBody(_Body):
    enabled: bool | None = None
    auto_extract: bool | None = None


def create_knowledge_router(user_id: Callable[..., Any], knowledge: Callable[..., Any], *,
                            prefix: str = PREFIX) -> APIRouter:
    """The router; ``user_id`` and ``knowledge`` are dependencies (see the module doc)."""
    router = APIRouter(prefix=prefix, tags=["knowledge"])
    User = Depends(user_id)  # noqa: N806 - dependency markers read like types here
    KB = Depends(knowledge)  # noqa: N806
    _document_routes(router, User, KB)
    _collection_routes(router, User, KB)
    _memory_routes(router, User, KB)
    return router


def _scope(collection: str | None, conversation_id: str | None) -> Scope:
    return Scope(collection=collection or None, conversation_id=conversation_id or None)


def _document_routes(router: APIRouter, User: Any, KB: Any) -> None:  # noqa: N803
    @router.get("/documents", summary="Your documents (of one collection or conversation)")
    async def list_documents(collection: str | None = None, conversation_id: str | None = None,
                             uid: int = User, kb: KnowledgeBase = KB) -> dict[str, Any]:
        docs = await run_in_threadpool(kb.list_documents, uid,
                                       _scope(collection, conversation_id))
        return {"documents": [d.to_json() for d in docs]}

    @router.post("/documents", status_code=201,
                 summary="Add a document: the raw file is the request body")
    @route_policy(any_body=True)  # the raw file, of any type (CSRF-checked, so preflighted)
    async def add_document(request: Request,
                           filename: str = Query(min_length=1, max_length=255),
                           collection: str | None = None, conversation_id: str | None = None,
                           uid: int = User, kb: KnowledgeBase = KB) -> JSONResponse:
        name = Path(filename.replace("\\", "/")).name
        kind_of(name)  # unsupported types fail before the upload is read
        scope = _scope(collection, conversation_id)
        await run_in_threadpool(kb.documents.check_scope, uid, scope)
        path = await _receive(request, kb.settings.document_max_bytes, name)
        try:
            result = await run_in_threadpool(
                lambda: kb.add_file(uid, path, scope, filename=name, source=f"upload:{name}"))
        finally:
            path.unlink(missing_ok=True)
            path.parent.rmdir()
        body = {"document": result.document.to_json(), "created": result.created,
                "replaced": result.replaced}
        return JSONResponse(body, status_code=201 if result.created else 200)

    @router.get("/documents/{document_id}", summary="One document")
    async def get_document(document_id: str, uid: int = User,
                           kb: KnowledgeBase = KB) -> dict[str, Any]:
        doc = await run_in_threadpool(kb.documents.get, uid, document_id)
        return doc.to_json()

    @router.get("/documents/{document_id}/text",
                summary="A document's extracted text (citations point into it by offsets)")
    async def document_text(document_id: str, uid: int = User,
                            kb: KnowledgeBase = KB) -> dict[str, Any]:
        doc, content = await run_in_threadpool(kb.documents.content, uid, document_id)
        return {"document": doc.to_json(), "text": content}

    @router.delete("/documents/{document_id}", summary="Remove a document and its passages")
    async def delete_document(document_id: str, uid: int = User,
                              kb: KnowledgeBase = KB) -> dict[str, Any]:
        doc = await run_in_threadpool(kb.remove_document, uid, document_id)
        return {"id": doc.id, "deleted": True}

    @router.get("/passages/{chunk_id}", summary="One passage (what a citation links to)")
    async def get_passage(chunk_id: int, uid: int = User,
                          kb: KnowledgeBase = KB) -> dict[str, Any]:
        passage = await run_in_threadpool(kb.documents.passage, uid, chunk_id)
        return passage.to_json()

    @router.post("/search", summary="The passages that best match a query")
    async def search(body: SearchBody, uid: int = User, kb: KnowledgeBase = KB
                     ) -> dict[str, Any]:
        passages = await run_in_threadpool(
            lambda: kb.search(uid, body.query, _scope(body.collection, body.conversation_id),
                              limit=body.limit, mode=body.mode))
        return {"passages": [p.to_json() for p in passages]}

    @router.post("/context", summary="The late-prompt context block the chat would add")
    async def context(body: ContextBody, uid: int = User, kb: KnowledgeBase = KB
                      ) -> dict[str, Any]:
        ctx = await kb.acontext(uid, body.query, collection=body.collection or None,
                                conversation_id=body.conversation_id or None, mode=body.mode)
        return {**ctx.to_json(), "text": ctx.text}


async def _receive(request: Request, limit: int, name: str) -> Path:
    """Stream the request body into a private temporary file, refusing it past ``limit``."""
    folder = Path(tempfile.mkdtemp(prefix="openwen-upload-"))
    path = folder / name
    received = 0
    try:
        with path.open("wb") as out:
            async for block in request.stream():
                received += len(block)
                if received > limit:
                    raise DocumentTooLargeError(
                        f"{name}: the file is larger than the limit of "
                        f"{limit / (1024 * 1024):.1f} MB (setting document_max_bytes)",
                        param="file")
                await run_in_threadpool(out.write, block)
    except BaseException:
        path.unlink(missing_ok=True)
        os.rmdir(folder)
        raise
    return path


def _collection_routes(router: APIRouter, User: Any, KB: Any) -> None:  # noqa: N803
    @router.get("/collections", summary="Your collections")
    async def list_collections(uid: int = User, kb: KnowledgeBase = KB) -> dict[str, Any]:
        collections = await run_in_threadpool(kb.documents.collections, uid)
        return {"collections": [c.to_json() for c in collections]}

    @router.post("/collections", status_code=201, summary="Create a collection")
    async def create_collection(body: CollectionBody, uid: int = User,
                                kb: KnowledgeBase = KB) -> dict[str, Any]:
        record = await run_in_threadpool(kb.documents.create_collection, uid, body.name)
        return record.to_json()

    @router.patch("/collections/{name}", summary="Rename a collection")
    async def rename_collection(name: str, body: CollectionBody, uid: int = User,
                                kb: KnowledgeBase = KB) -> dict[str, Any]:
        await run_in_threadpool(kb.documents.rename_collection, uid, name, body.name)
        return {"name": body.name}

    @router.delete("/collections/{name}", summary="Delete a collection (documents stay)")
    async def delete_collection(name: str, uid: int = User,
                                kb: KnowledgeBase = KB) -> dict[str, Any]:
        await run_in_threadpool(kb.documents.delete_collection, uid, name)
        return {"name": name, "deleted": True}

    @router.put("/collections/{name}/documents/{document_id}",
                summary="Put a document in a collection")
    async def attach_to_collection(name: str, document_id: str, uid: int = User,
                                   kb: KnowledgeBase = KB) -> dict[str, Any]:
        added = await run_in_threadpool(kb.documents.attach, uid, document_id,
                                        Scope(collection=name))
        return {"collection": name, "document_id": document_id, "added": added}

    @router.delete("/collections/{name}/documents/{document_id}",
                   summary="Take a document out of a collection")
    async def detach_from_collection(name: str, document_id: str, uid: int = User,
                                     kb: KnowledgeBase = KB) -> dict[str, Any]:
        removed = await run_in_threadpool(kb.documents.detach, uid, document_id,
                                          Scope(collection=name))
        return {"collection": name, "document_id": document_id, "removed": removed}

    @router.put("/conversations/{conversation_id}/documents/{document_id}",
                summary="Attach a document to a conversation")
    async def attach_to_conversation(conversation_id: str, document_id: str, uid: int = User,
                                     kb: KnowledgeBase = KB) -> dict[str, Any]:
        added = await run_in_threadpool(kb.documents.attach, uid, document_id,
                                        Scope(conversation_id=conversation_id))
        return {"conversation_id": conversation_id, "document_id": document_id, "added": added}

    @router.delete("/conversations/{conversation_id}/documents/{document_id}",
                   summary="Detach a document from a conversation")
    async def detach_from_conversation(conversation_id: str, document_id: str,
                                       uid: int = User, kb: KnowledgeBase = KB
                                       ) -> dict[str, Any]:
        removed = await run_in_threadpool(kb.documents.detach, uid, document_id,
                                          Scope(conversation_id=conversation_id))
        return {"conversation_id": conversation_id, "document_id": document_id,
                "removed": removed}


def _memory_routes(router: APIRouter, User: Any, KB: Any) -> None:  # noqa: N803
    @router.get("/memories", summary="Everything remembered about you")
    async def list_memories(uid: int = User, kb: KnowledgeBase = KB) -> dict[str, Any]:
        memories = await run_in_threadpool(kb.memories.all, uid)
        return {"memories": [m.to_json() for m in memories]}

    @router.post("/memories", status_code=201, summary="Remember a fact")
    async def add_memory(body: MemoryBody, uid: int = User,
                         kb: KnowledgeBase = KB) -> dict[str, Any]:
        memory = await run_in_threadpool(kb.memories.add, uid, body.text, "user")
        return memory.to_json()

    @router.patch("/memories/{memory_id}", summary="Change a memory")
    async def edit_memory(memory_id: int, body: MemoryBody, uid: int = User,
                          kb: KnowledgeBase = KB) -> dict[str, Any]:
        memory = await run_in_threadpool(kb.memories.edit, uid, memory_id, body.text)
        return memory.to_json()

    @router.delete("/memories/{memory_id}", summary="Forget a memory")
    async def delete_memory(memory_id: int, uid: int = User,
                            kb: KnowledgeBase = KB) -> dict[str, Any]:
        memory = await run_in_threadpool(kb.memories.delete, uid, memory_id)
        return {"id": memory.id, "deleted": True}

    @router.delete("/memories", summary="Forget everything")
    async def clear_memories(confirm: bool = False, uid: int = User,
                             kb: KnowledgeBase = KB) -> dict[str, Any]:
        if not confirm:
            raise InvalidRequestError("add ?confirm=true to forget every memory",
                                      param="confirm")
        count = await run_in_threadpool(kb.memories.clear, uid)
        return {"deleted": count}

    @router.get("/memory/settings", summary="Memory switches")
    async def get_memory_settings(uid: int = User, kb: KnowledgeBase = KB) -> dict[str, bool]:
        return await run_in_threadpool(kb.memory_settings, uid)

    @router.put("/memory/settings", summary="Turn memory or automatic extraction on or off")
    async def put_memory_settings(body: MemorySettingsBody, uid: int = User,
                                  kb: KnowledgeBase = KB) -> dict[str, bool]:
        return await run_in_threadpool(
            lambda: kb.set_memory_settings(uid, enabled=body.enabled,
                                           auto_extract=body.auto_extract))
