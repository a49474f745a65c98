"""Retrieval quality over the evaluation sets of bench/data/eval/ and bench/data/rag_eval.json.

    .venv/bin/python bench/rag_eval.py              # all sets, tuning and held-out parts
    .venv/bin/python bench/rag_eval.py --tune       # also the fusion grid on the tuning part

Sets (each question: lexical, or paraphrased so its words do not match; tuning or held-out):

- prose: public-domain texts of bench/data/ (50 questions of rag_eval.json, odd ones tuning);
- notes: short Markdown pages with shared boilerplate, one fact under a sub-heading each
  (36 "binder" pages, 72 tuning questions; 24 "family" pages, the issue-15 scenario:
  12 paraphrased + 12 lexical held-out questions, each page searched in its collection);
- technical: CLI, API, configuration and operations docs (56 questions);
- chinese: Chinese notes pages with shared boilerplate (30 questions).

A hit is a passage containing the question's answer string (whitespace-normalised). Rankings
are fetched once per question (full-text and vector, 50 deep) and fused offline, so a grid of
fusions costs nothing; the "hybrid" row is what ``KnowledgeBase.search`` returns.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from openwen.knowledge import KnowledgeBase, KnowledgeSettings, LocalEmbedder, Scope  # noqa: E402
from openwen.knowledge.retrieval import fuse_relative, fuse_rrf  # noqa: E402
from openwen.storage import Storage  # noqa: E402

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data"
DEPTH = 50
Rankings = dict[str, list[tuple[int, float]]]


def norm(value: str) -> str:
    return " ".join(value.split()).lower()


def load_sets() -> list[dict[str, Any]]:
    prose = json.loads((DATA / "rag_eval.json").read_text())
    files = sorted(p for p in DATA.iterdir()
                   if p.is_file() and p.name not in {"rag_eval.json", "README.md"})
    questions = [{**q, "part": "tune" if n % 2 == 0 else "holdout"}
                 for n, q in enumerate(prose["questions"])]
    sets = [{"set": "prose", "files": files, "questions": questions}]
    for name in ("notes", "technical", "chinese"):
        sets.append(json.loads((DATA / "eval" / f"{name}.json").read_text(encoding="utf-8")))
    return sets


def index(kb: KnowledgeBase, user_id: int, spec: dict[str, Any], folder: Path) -> dict[str, str]:
    """Add the set's documents; returns {file name: collection}."""
    where: dict[str, str] = {}
    for path in spec.get("files", []):
        kb.add_file(user_id, path, Scope(collection=spec["set"]))
        where[path.name] = spec["set"]
    collections = spec.get("collections") or {spec["set"]: [d["file"] for d in
                                                            spec.get("documents", [])]}
    texts = {d["file"]: d["text"] for d in spec.get("documents", [])}
    for collection, names in collections.items():
        for name in names:
            path = folder / name
            path.write_text(texts[name], encoding="utf-8")
            kb.add_file(user_id, path, Scope(collection=collection))
            where[name] = collection
    return where


def rankings(kb: KnowledgeBase, user_id: int, question: str, collection: str) -> Rankings:
    scope = Scope(collection=collection)
    out: Rankings = {}
    for mode in ("fulltext", "vector"):
        hits = kb.search(user_id, question, scope, limit=DEPTH, mode=mode)  # type: ignore
        out[mode] = [(p.chunk_id, p.score) for p in hits]
    return out


def rank_of(order: list[int], relevant: set[int]) -> int | None:
    for n, chunk in enumerate(order[:10], 1):
        if chunk in relevant:
            return n
    return None


def metrics(ranks: list[int | None]) -> dict[str, float]:
    n = max(1, len(ranks))
    return {"n": len(ranks), "r1": sum(r == 1 for r in ranks) / n,
            "r5": sum(1 for r in ranks if r and r <= 5) / n,
            "mrr": sum(1 / r for r in ranks if r) / n}


Fusion = Callable[[Rankings], list[int]]


def fusions(grid: bool) -> dict[str, Fusion]:
    out: dict[str, Fusion] = {
        "fulltext": lambda r: [i for i, _ in r["fulltext"]],
        "vector": lambda r: [i for i, _ in r["vector"]],
        "rrf": lambda r: [i for i, _, _ in fuse_rrf(r)],
    }
    weights = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95] if grid else []
    for w in weights:
        out[f"rsf{w:g}"] = (lambda weight: lambda r: [i for i, _, _ in fuse_relative(
            r, {"vector": weight, "fulltext": 1 - weight})])(w)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tune", action="store_true", help="grid of fusion weights")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--sets", default="prose,notes,technical,chinese",
                        help="comma-separated sets to run")
    args = parser.parse_args()
    embedder = LocalEmbedder.minilm()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="openwen-eval-") as tmp:
        folder = Path(tmp)
        storage = Storage.open(f"sqlite:///{folder / 'eval.db'}")
        kb = KnowledgeBase(storage.db, embedder, KnowledgeSettings())
        fused = fusions(args.tune)
        rows: list[dict[str, Any]] = []
        wanted = set(args.sets.split(","))
        for spec in [s for s in load_sets() if s["set"] in wanted]:
            user = storage.users.create(spec["set"], None)
            start = time.perf_counter()
            where = index(kb, user.id, spec, folder)
            took = time.perf_counter() - start
            chunks = {}
            with storage.db.read() as s:
                from sqlalchemy import text

                for cid, body in s.execute(text("SELECT id, text FROM knowledge_chunks "
                                                "WHERE user_id = :u"), {"u": user.id}):
                    chunks[cid] = norm(body)
            print(f"{spec['set']}: {len(where)} documents, {len(chunks)} chunks, "
                  f"indexed in {took:.1f} s", file=sys.stderr)
            for q in spec["questions"]:
                relevant = {c for c, body in chunks.items() if norm(q["answer"]) in body}
                if not relevant:
                    print(f"  warning: the answer of {q['id']} is in no chunk", file=sys.stderr)
                ranked = rankings(kb, user.id, q["question"], where[q["document"]])
                hybrid = kb.search(user.id, q["question"], Scope(where[q["document"]]),
                                   limit=10)
                row = {"set": spec["set"], "kind": q["kind"], "part": q["part"], "id": q["id"],
                       "hybrid": rank_of([p.chunk_id for p in hybrid], relevant)}
                for name, fuse in fused.items():
                    row[name] = rank_of(fuse(ranked), relevant)
                rows.append(row)
        storage.close()
    embedder.close()
    modes = ["fulltext", "vector", "hybrid", *[m for m in fused if m not in
                                               ("fulltext", "vector")]]
    for part in ("tune", "holdout"):
        print(f"\n== {part} part ==")
        print(f"{'set / kind':<22} {'n':>4}  " + "  ".join(f"{m:>16}" for m in modes))
        groups = [(s, k) for s in ("all", "prose", "notes", "technical", "chinese")
                  for k in ("lexical", "paraphrase")]
        for set_name, kind in groups:
            picked = [r for r in rows if r["part"] == part and r["kind"] == kind
                      and (set_name == "all" and r["set"] != "chinese" or r["set"] == set_name)]
            if not picked:
                continue
            cells = []
            for m in modes:
                f = metrics([r[m] for r in picked])
                cells.append(f"{f['r1']:.2f}/{f['r5']:.2f}/{f['mrr']:.2f}")
                results.setdefault(part, {}).setdefault(f"{set_name}/{kind}", {})[m] = f
            print(f"{set_name + ' / ' + kind:<22} {len(picked):>4}  "
                  + "  ".join(f"{c:>16}" for c in cells))
    scenario = [r for r in rows if r["id"].startswith("family-")]
    for kind in ("paraphrase", "lexical"):
        picked = [r for r in scenario if r["kind"] == kind]
        hits = {m: sum(r[m] == 1 for r in picked) for m in ("fulltext", "vector", "hybrid")}
        print(f"issue-15 scenario, {kind}: recall@1 " + ", ".join(
            f"{m} {n}/{len(picked)}" for m, n in hits.items()))
    print("\ncells: recall@1/recall@5/MRR@10; 'all' = the English sets")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
