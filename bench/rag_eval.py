"""Retrieval quality over the evaluation sets of bench/data/eval/ and bench/data/rag_eval.json.

    .venv/bin/python bench/rag_eval.py              # all sets, tuning and held-out parts
    .venv/bin/python bench/rag_eval.py --tune       # also the fusion grid on the tuning part
    .venv/bin/python bench/rag_eval.py --rankings /tmp/r.json --tune   # 2nd run: seconds
    .venv/bin/python bench/rag_eval.py --embedding-model multilingual-e5-small

Sets (each question: lexical, or paraphrased so its words do not match; tuning or held-out):

- prose: public-domain texts of bench/data/ (50 questions of rag_eval.json, odd ones tuning);
- notes: short Markdown pages with shared boilerplate, one fact under a sub-heading each
  (36 "binder" pages, 72 tuning questions; 24 "family" pages, the issue-15 scenario:
  12 paraphrased + 12 lexical held-out questions, each page searched in its collection);
- technical: CLI, API, configuration and operations docs (56 questions);
- chinese: Chinese notes pages with shared boilerplate (30 questions).

A hit is a passage containing the question's answer string (whitespace-normalised). Rankings
are fetched once per question (full-text and vector, 50 deep) and fused offline, so a grid of
fusions costs nothing; the "hybrid" row is the configured fusion (``KnowledgeSettings``), the
one ``KnowledgeBase.search`` returns (checked against it on a live run). Embeddings are cached
on disk (``bench/embed_cache.py``, keyed by model and text hash), and ``--rankings FILE`` keeps
the rankings themselves, so a second run indexes nothing. ``--tune`` ranks a grid of fusions
on the tuning part by how many (set, kind) groups fall below the better of full-text and
vectors alone (recall@1 and recall@5), and prints the best ones' held-out figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from openwen.knowledge import KnowledgeBase, KnowledgeSettings, LocalEmbedder, Scope  # noqa: E402
from openwen.knowledge.embedder import reads_cjk  # noqa: E402
from openwen.knowledge.retrieval import for_model, fuse, fuse_rrf  # noqa: E402
from openwen.storage import Storage  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed_cache import DEFAULT_PATH as DEFAULT_CACHE  # noqa: E402
from embed_cache import CachedEmbedder  # noqa: E402

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


Fusion = Callable[[Rankings, str], list[int]]
SETTINGS = KnowledgeSettings()
READS_CJK = False  # all-MiniLM-L6-v2; set from the rankings' model in main()


def configured(**overrides: Any) -> Fusion:
    settings = replace(SETTINGS, **overrides)
    return lambda r, q: [i for i, _, _ in fuse(r, settings, query=q, reads_cjk=READS_CJK)]


def fusions(grid: bool) -> dict[str, Fusion]:
    out: dict[str, Fusion] = {
        "fulltext": lambda r, q: [i for i, _ in r["fulltext"]],
        "vector": lambda r, q: [i for i, _ in r["vector"]],
        "rrf": lambda r, q: [i for i, _, _ in fuse_rrf(r)],
    }
    if not grid:
        return out
    for w in (0.6, 0.75, 0.8, 0.85, 0.9, 0.95):
        for scale in (0.0, 0.1, 0.2, 0.3, 0.4):  # 0: min-max over the candidates
            for cjk in (0.0, 0.25, 0.5):
                out[f"w{w:g}s{scale:g}z{cjk:g}"] = configured(
                    fusion="relative", vector_weight=w, vector_scale=scale,
                    cjk_vector_weight=cjk)
    for k in (10, 30, 60):
        out[f"rrf{k}"] = configured(fusion="rrf", rrf_k=k)
    return out


def collect(args: argparse.Namespace) -> tuple[str, list[dict[str, Any]]]:
    """Per question: its rankings (full-text and vector, ``DEPTH`` deep), the relevant chunk
    ids and the live hybrid rank; from ``--rankings`` when that file exists."""
    if args.rankings and args.rankings.exists():
        stored = json.loads(args.rankings.read_text(encoding="utf-8"))
        return str(stored["model"]), list(stored["rows"])
    embedder = make_embedder(args)
    rows: list[dict[str, Any]] = []
    passages: dict[str, str] = {}  # chunk id -> heading path and text, for --rerank
    with tempfile.TemporaryDirectory(prefix="openwen-eval-") as tmp:
        folder = Path(tmp)
        storage = Storage.open(f"sqlite:///{folder / 'eval.db'}")
        kb = KnowledgeBase(storage.db, embedder, KnowledgeSettings())
        wanted = set(args.sets.split(","))
        for spec in [s for s in load_sets() if s["set"] in wanted]:
            user = storage.users.create(spec["set"], None)
            start = time.perf_counter()
            where = index(kb, user.id, spec, folder)
            took = time.perf_counter() - start
            chunks = {}
            with storage.db.read() as s:
                from sqlalchemy import text

                for cid, body, section in s.execute(text(
                        "SELECT id, text, section FROM knowledge_chunks WHERE user_id = :u"),
                        {"u": user.id}):
                    chunks[cid] = norm(body)
                    passages[str(cid)] = f"{section}\n{body}" if section else body
            print(f"{spec['set']}: {len(where)} documents, {len(chunks)} chunks, "
                  f"indexed in {took:.1f} s", file=sys.stderr)
            for q in spec["questions"]:
                relevant = {c for c, body in chunks.items() if norm(q["answer"]) in body}
                if not relevant:
                    print(f"  warning: the answer of {q['id']} is in no chunk", file=sys.stderr)
                ranked = rankings(kb, user.id, q["question"], where[q["document"]])
                hybrid = kb.search(user.id, q["question"], Scope(where[q["document"]]),
                                   limit=10)
                rows.append({"set": spec["set"], "kind": q["kind"], "part": q["part"],
                             "id": q["id"], "question": q["question"],
                             "relevant": sorted(relevant), "rankings": ranked,
                             "live": rank_of([p.chunk_id for p in hybrid], relevant)})
        storage.close()
    print(f"embedding cache: {getattr(embedder, 'hits', 0)} hits, "
          f"{getattr(embedder, 'misses', 0)} computed", file=sys.stderr)
    embedder.close()
    if args.rankings:
        args.rankings.parent.mkdir(parents=True, exist_ok=True)
        args.rankings.write_text(json.dumps({"model": embedder.name, "rows": rows,
                                             "passages": passages}), encoding="utf-8")
    return embedder.name, rows


def make_embedder(args: argparse.Namespace) -> Any:
    if args.embedding_model:
        from openwen.config import Settings

        inner: Any = LocalEmbedder.for_settings(Settings(embedding_model=args.embedding_model))
    else:
        inner = LocalEmbedder.minilm()
    return inner if args.no_cache else CachedEmbedder(inner, args.cache)


def reranked(args: argparse.Namespace, rows: list[dict[str, Any]]) -> list[str]:
    """Rerank each row's hybrid top ``--rerank`` over passage windows (bench/rag_rerank.py);
    adds one mode per beta, and prints the second stage's time per query, uncached."""
    from rag_rerank import rerank, window_scores

    passages = json.loads(args.rankings.read_text(encoding="utf-8"))["passages"]
    embedder = make_embedder(args)
    betas = (0.25, 0.5, 0.75, 1.0)
    for row in rows:
        ranked = {k: [(int(i), float(s)) for i, s in v] for k, v in row["rankings"].items()}
        fused = fuse(ranked, SETTINGS, query=row["question"], reads_cjk=READS_CJK)
        order, scores = [i for i, _, _ in fused], [s for _, s, _ in fused]
        top = order[:args.rerank]
        windows = window_scores(embedder, row["question"], top, passages) if top else None
        for beta in betas:
            mine = rerank(order, scores, windows, beta) if windows is not None else order
            row[f"rr{args.rerank}b{beta:g}"] = rank_of(mine, set(row["relevant"]))
    inner = getattr(embedder, "inner", embedder)
    times = []
    for row in rows[:40]:
        top = [int(i) for i, _ in row["rankings"]["vector"][:args.rerank]]
        start = time.perf_counter()
        window_scores(inner, row["question"] + " ", top, passages)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    print(f"second stage, {args.rerank} candidates, uncached: p50 {times[len(times) // 2]:.1f} "
          f"ms, p95 {times[int(len(times) * 0.95) - 1]:.1f} ms over {len(times)} queries",
          file=sys.stderr)
    embedder.close()
    return [f"rr{args.rerank}b{b:g}" for b in betas]


def groups_of(rows: list[dict[str, Any]], part: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["part"] == part:
            out.setdefault(f"{r['set']}/{r['kind']}", []).append(r)
    return out


def shortfall(picked: list[dict[str, Any]], mode: str) -> float:
    """How far ``mode`` falls below the better of its two parts, recall@1 plus recall@5."""
    mine = metrics([r[mode] for r in picked])
    total = 0.0
    for metric in ("r1", "r5"):
        best = max(metrics([r[part] for r in picked])[metric] for part in ("fulltext", "vector"))
        total += max(0.0, best - mine[metric])
    return total


def select(rows: list[dict[str, Any]], candidates: list[str], show: int = 8) -> list[str]:
    """Rank the fusions on the tuning part: fewest (set, kind) groups below their best part,
    then the smallest total shortfall, then the best mean MRR; print the first ``show`` with
    their held-out figures."""
    tune, held = groups_of(rows, "tune"), groups_of(rows, "holdout")

    def score(mode: str, groups: dict[str, list[dict[str, Any]]]) -> tuple[int, float, float]:
        falls = [shortfall(g, mode) for g in groups.values()]
        mrr = sum(metrics([r[mode] for r in g])["mrr"] for g in groups.values()) / len(groups)
        return sum(f > 1e-9 for f in falls), sum(falls), mrr

    ranked = sorted(candidates, key=lambda m: (score(m, tune)[0], score(m, tune)[1],
                                               -score(m, tune)[2]))
    print("\nfusion grid (groups below their best part, total shortfall, mean MRR):")
    for mode in ["hybrid", *ranked[:show]]:
        t, h = score(mode, tune), score(mode, held)
        print(f"  {mode:<18} tune {t[0]} / {t[1]:.2f} / {t[2]:.3f}   "
              f"held out {h[0]} / {h[1]:.2f} / {h[2]:.3f}")
    return ranked[:3]


def table(rows: list[dict[str, Any]], modes: list[str], results: dict[str, Any]) -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tune", action="store_true", help="grid of fusion weights")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--sets", default="prose,notes,technical,chinese",
                        help="comma-separated sets to run")
    parser.add_argument("--embedding-model", default="",
                        help="embedding_model setting (default all-MiniLM-L6-v2)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="embedding cache file (model + text hash -> vector)")
    parser.add_argument("--no-cache", action="store_true", help="embed everything again")
    parser.add_argument("--rankings", type=Path,
                        help="rankings file: read it when it exists (no indexing at all), "
                             "else write it, so a fusion grid takes seconds")
    parser.add_argument("--rerank", type=int, default=0,
                        help="also rerank the hybrid top N over passage windows")
    args = parser.parse_args()
    if args.rerank and not args.rankings:
        parser.error("--rerank needs --rankings (it reads the passages from there)")
    global READS_CJK
    model, rows = collect(args)
    READS_CJK = reads_cjk(SimpleNamespace(name=model))  # type: ignore[arg-type]
    global SETTINGS
    SETTINGS = for_model(KnowledgeSettings(), model)
    fused = fusions(args.tune)
    for row in rows:
        ranked = {k: [(int(i), float(s)) for i, s in v] for k, v in row["rankings"].items()}
        relevant = set(row["relevant"])
        row["hybrid"] = rank_of([i for i, _, _ in fuse(ranked, SETTINGS, query=row["question"],
                                                        reads_cjk=READS_CJK)], relevant)
        for name, fusion in fused.items():
            row[name] = rank_of(fusion(ranked, row["question"]), relevant)
    extra = reranked(args, rows) if args.rerank else []
    if any(r.get("live") != r["hybrid"] for r in rows if "live" in r):
        print("warning: the offline hybrid differs from KnowledgeBase.search (rankings "
              "recorded under other settings?)", file=sys.stderr)
    results: dict[str, Any] = {}
    modes = ["fulltext", "vector", "hybrid", "rrf", *extra]
    if args.tune:
        best = select(rows, [m for m in fused if m not in ("fulltext", "vector")])
        modes += [m for m in best if m not in modes]
    table(rows, modes, results)
    scenario = [r for r in rows if r["id"].startswith("family-")]
    for kind in ("paraphrase", "lexical"):
        picked = [r for r in scenario if r["kind"] == kind]
        hits = {m: sum(r[m] == 1 for r in picked) for m in ("fulltext", "vector", "hybrid")}
        print(f"issue-15 scenario, {kind}: recall@1 " + ", ".join(
            f"{m} {n}/{len(picked)}" for m, n in hits.items()))
    print("\ncells: recall@1/recall@5/MRR@10; 'all' = the English sets")
    if args.json:
        slim = [{k: v for k, v in r.items() if k != "rankings"} for r in rows]
        args.json.write_text(json.dumps({"results": results, "rows": slim}, indent=1))


if __name__ == "__main__":
    main()
