"""Documents (RAG) benchmark: retrieval quality, ingest throughput, query latency.

    .venv/bin/python bench/rag.py                 # everything (a few minutes on 2 cores)
    .venv/bin/python bench/rag.py --sizes 10000   # latency at 10k chunks only

1. Quality: the public-domain texts of bench/data/ are indexed with all-MiniLM-L6-v2, and the
   questions of bench/data/rag_eval.json (half of them paraphrased, so their words do not match
   the passage) are searched with full-text only, vector only and hybrid (RRF). A hit is a chunk
   containing the question's known answer passage. Reported: recall@1, recall@5, MRR@10.
2. Ingest throughput: the same texts laid out as PDF pages (about 3,000 characters a page),
   parsed, chunked, embedded and stored: pages per second.
3. Query latency: synthetic chunks (random unit embeddings, text drawn from the corpus
   vocabulary) at each size; hybrid search p50/p95 with a warm vector cache, the query embedding
   excluded (the model's time is reported on its own), plus full-text and vector alone and the
   cache's cold load.

SQLite only (a file in a temporary directory). Targets: hybrid recall@5 >= 0.9; p95 <= 50 ms at
100k chunks.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import random
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import text

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from openwen.knowledge import KnowledgeBase, KnowledgeSettings, LocalEmbedder  # noqa: E402
from openwen.knowledge.parse import kind_of, parse_file  # noqa: E402
from openwen.storage import Storage  # noqa: E402

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data"
MODES = ("fulltext", "vector", "hybrid", "hybrid-rrf")
PAGE_CHARS = 3000
DIMS = 384


def load_pdfgen():
    spec = importlib.util.spec_from_file_location(
        "pdfgen", ROOT.parent / "tests" / "knowledge" / "pdfgen.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def norm(value: str) -> str:
    return " ".join(value.split()).lower()


def corpus_files() -> list[Path]:
    skip = {"rag_eval.json", "README.md"}
    return sorted(p for p in DATA.iterdir() if p.name not in skip and p.is_file())


# -- 1. quality ------------------------------------------------------------------------------


def evaluate(kb: KnowledgeBase, user_id: int) -> dict:
    rrf = KnowledgeBase(kb.db, kb.embedder, KnowledgeSettings(fusion="rrf"), cache=kb.cache)
    questions = json.loads((DATA / "rag_eval.json").read_text())["questions"]
    chunks = {}
    with kb.db.read() as s:
        for cid, body in s.execute(text("SELECT id, text FROM knowledge_chunks")):
            chunks[cid] = norm(body)
    for q in questions:
        if not any(norm(q["answer"]) in body for body in chunks.values()):
            print(f"  warning: the answer of {q['id']} is in no chunk", file=sys.stderr)
    results: dict = {}
    for mode in MODES:
        ranks = {}
        for q in questions:
            if mode == "hybrid-rrf":
                hits = rrf.search(user_id, q["question"], limit=10)
            else:
                hits = kb.search(user_id, q["question"], limit=10, mode=mode)  # type: ignore
            relevant = [n for n, p in enumerate(hits, 1) if norm(q["answer"]) in norm(p.text)]
            ranks[q["id"]] = relevant[0] if relevant else None
        results[mode] = {kind: metrics([ranks[q["id"]] for q in questions
                                        if kind == "all" or q["kind"] == kind])
                         for kind in ("all", "lexical", "paraphrase")}
        misses = [q["id"] for q in questions if not ranks[q["id"]] or ranks[q["id"]] > 5]
        results[mode]["missed@5"] = misses
    return results


def metrics(ranks: list[int | None]) -> dict:
    n = len(ranks)
    return {
        "n": n,
        "recall@1": sum(1 for r in ranks if r == 1) / n,
        "recall@5": sum(1 for r in ranks if r and r <= 5) / n,
        "mrr": sum(1 / r for r in ranks if r) / n,
    }


# -- 2. ingest ---------------------------------------------------------------------------------


def make_pdfs(folder: Path) -> tuple[list[Path], int]:
    """The corpus as PDFs of ~PAGE_CHARS-character pages; (files, pages)."""
    pdfgen = load_pdfgen()
    files, pages = [], 0
    for path in corpus_files():
        parsed = parse_file(path, kind_of(path.name), KnowledgeSettings())
        body = "\n".join(s.text for s in parsed.sections)
        chunks = [body[i:i + PAGE_CHARS] for i in range(0, len(body), PAGE_CHARS)]
        out = folder / (path.stem + ".pdf")
        out.write_bytes(pdfgen.make_pdf(chunks))
        files.append(out)
        pages += len(chunks)
    return files, pages


def ingest(kb: KnowledgeBase, user_id: int, files: list[Path]) -> float:
    start = time.perf_counter()
    for path in files:
        kb.add_file(user_id, path)
    return time.perf_counter() - start


# -- 3. latency --------------------------------------------------------------------------------


class RandomEmbedder:
    """Deterministic pseudo-random unit vectors: retrieval cost without the model's."""

    name = "all-minilm-l6-v2"

    def embed(self, texts: list[str]) -> np.ndarray:
        rows = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(DIMS).astype(np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.vstack(rows)


def vocabulary() -> list[str]:
    counts: dict[str, int] = {}
    for path in corpus_files():
        for word in re.findall(r"[a-z]{3,}", path.read_text().lower()):
            counts[word] = counts.get(word, 0) + 1
    return sorted(counts, key=lambda w: -counts[w])


def fill(storage: Storage, user_id: int, n: int, words: list[str], rng: random.Random) -> None:
    """``n`` synthetic chunks in documents of 100 chunks, inserted in bulk."""
    weights = [1 / (r + 1) for r in range(len(words))]
    vectors = np.random.default_rng(7).standard_normal((n, DIMS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    now = "2025-01-01 00:00:00"
    with storage.db.write_engine.begin() as conn:
        docs = []
        for d in range(0, n, 100):
            doc_id = str(uuid.uuid4())
            docs.append(doc_id)
            conn.execute(text(
                "INSERT INTO knowledge_documents (id, user_id, filename, source, kind, sha256, "
                "size_bytes, pages, content, embedding_model, meta, created_at) VALUES (:id, :u, "
                ":f, NULL, 'text', :sha, 0, NULL, '', 'all-minilm-l6-v2', '{}', :now)"),
                {"id": doc_id, "u": user_id, "f": f"synthetic-{d // 100}.txt",
                 "sha": hashlib.sha256(doc_id.encode()).hexdigest(), "now": now})
        rows = []
        for i in range(n):
            body = " ".join(rng.choices(words, weights, k=60))
            rows.append({"d": docs[i // 100], "u": user_id, "o": i % 100, "t": body,
                         "e": vectors[i].tobytes()})
        conn.execute(text(
            "INSERT INTO knowledge_chunks (document_id, user_id, ordinal, page, section, "
            "char_start, char_end, text, embedding, search_text) VALUES (:d, :u, :o, NULL, "
            "NULL, 0, 0, :t, :e, :t)"), rows)
        conn.execute(text("INSERT INTO knowledge_versions (user_id, chunks, memories) "
                          "VALUES (:u, 1, 0)"), {"u": user_id})


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def latency(n: int, folder: Path, words: list[str], queries: int) -> dict:
    storage = Storage.open(f"sqlite:///{folder / f'latency-{n}.db'}")
    try:
        user = storage.users.create("bench", None)
        rng = random.Random(n)
        start = time.perf_counter()
        fill(storage, user.id, n, words, rng)
        fill_s = time.perf_counter() - start
        kb = KnowledgeBase(storage.db, RandomEmbedder())
        mid = words[50:3000]
        texts = [" ".join(rng.sample(mid, 4)) for _ in range(queries)]
        start = time.perf_counter()
        kb.search(user.id, texts[0], mode="vector")  # loads the matrix
        cold_ms = (time.perf_counter() - start) * 1000
        out = {"chunks": n, "fill_s": fill_s, "cold_load_ms": cold_ms}
        for mode in ("hybrid", "fulltext", "vector"):
            times = []
            for q in texts:
                start = time.perf_counter()
                kb.search(user.id, q, limit=5, mode=mode)
                times.append((time.perf_counter() - start) * 1000)
            out[mode] = {"p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95)}
        return out
    finally:
        storage.close()


# -- main --------------------------------------------------------------------------------------


def report_latency(args: argparse.Namespace, folder: Path) -> None:
    words = vocabulary()
    print("\nquery latency, warm cache, query embedding excluded "
          f"({args.queries} queries, limit 5)")
    for n in (int(s) for s in args.sizes.split(",") if s):
        r = latency(n, folder, words, args.queries)
        print(f"{n:>7} chunks: hybrid p50 {r['hybrid']['p50_ms']:.1f} ms, "
              f"p95 {r['hybrid']['p95_ms']:.1f} ms | full-text p50/p95 "
              f"{r['fulltext']['p50_ms']:.1f}/{r['fulltext']['p95_ms']:.1f} ms | vector "
              f"{r['vector']['p50_ms']:.1f}/{r['vector']['p95_ms']:.1f} ms | cold matrix "
              f"load {r['cold_load_ms']:.0f} ms (bulk fill {r['fill_s']:.0f} s)")


def query_embedding_ms(embedder: LocalEmbedder) -> None:
    import torch

    for threads in (torch.get_num_threads(), 1):
        # set on the embedder's own thread (OpenMP settings are per thread)
        embedder._executor.submit(torch.set_num_threads, threads).result()
        start = time.perf_counter()
        for _ in range(10):
            embedder.embed(["how long does a summer worker bee live?"])
        embed_ms = (time.perf_counter() - start) * 1000 / 10
        print(f"query embedding (all-MiniLM-L6-v2, CPU, {threads} torch thread"
              f"{'s' if threads > 1 else ''}): {embed_ms:.1f} ms per query")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="chunk counts for latency")
    parser.add_argument("--queries", type=int, default=100, help="queries per latency run")
    parser.add_argument("--latency-only", action="store_true",
                        help="only the query latency (no model: random embeddings)")
    parser.add_argument("--embedding-model", default="",
                        help="embedding_model setting (default all-MiniLM-L6-v2)")
    args = parser.parse_args()
    if args.latency_only:
        with tempfile.TemporaryDirectory(prefix="openwen-bench-") as tmp:
            report_latency(args, Path(tmp))
        return
    if args.embedding_model:
        from openwen.config import Settings

        embedder = LocalEmbedder.for_settings(Settings(embedding_model=args.embedding_model))
    else:
        embedder = LocalEmbedder.minilm()
    with tempfile.TemporaryDirectory(prefix="openwen-bench-") as tmp:
        folder = Path(tmp)
        storage = Storage.open(f"sqlite:///{folder / 'quality.db'}")
        kb = KnowledgeBase(storage.db, embedder, KnowledgeSettings())
        embedder.embed(["warm up"])
        reader = storage.users.create("reader", None)
        files = corpus_files()
        size = sum(p.stat().st_size for p in files)
        seconds = ingest(kb, reader.id, files)
        chunks = sum(d.chunks for d in kb.list_documents(reader.id))
        print(f"corpus: {len(files)} files, {size / 1024:.0f} KB, {chunks} chunks, "
              f"indexed in {seconds:.1f} s")
        quality = evaluate(kb, reader.id)
        n = quality["hybrid"]["all"]["n"]
        print(f"\nretrieval quality ({n} questions: {quality['hybrid']['lexical']['n']} "
              f"lexical, {quality['hybrid']['paraphrase']['n']} paraphrased); hybrid = "
              "relative score fusion (default), hybrid-rrf = reciprocal rank fusion (k=60)")
        print(f"{'mode':<10} {'recall@1':>9} {'recall@5':>9} {'MRR':>6}   "
              f"{'paraphrased r@5':>15} {'lexical r@5':>11}")
        for mode in MODES:
            m = quality[mode]
            print(f"{mode:<10} {m['all']['recall@1']:>9.3f} {m['all']['recall@5']:>9.3f} "
                  f"{m['all']['mrr']:>6.3f}   {m['paraphrase']['recall@5']:>15.3f} "
                  f"{m['lexical']['recall@5']:>11.3f}   missed@5: "
                  f"{', '.join(m['missed@5']) or '-'}")
        pdfs, pages = make_pdfs(folder)
        writer = storage.users.create("writer", None)
        seconds = ingest(kb, writer.id, pdfs)
        print(f"\ningest: {pages} PDF pages in {seconds:.1f} s = {pages / seconds:.2f} pages/s "
              "(parse + chunk + embed + store; embedding dominates)")
        if args.embedding_model:
            from openwen.knowledge.embedder import embed_query

            start = time.perf_counter()
            for _ in range(10):
                embed_query(embedder, ["how long does a summer worker bee live?"])
            print(f"query embedding ({embedder.name}): "
                  f"{(time.perf_counter() - start) * 100:.1f} ms per query")
        else:
            query_embedding_ms(embedder)
        storage.close()
        report_latency(args, folder)
    embedder.close()


if __name__ == "__main__":
    main()
