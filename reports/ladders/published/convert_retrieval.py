#!/usr/bin/env python3
"""Turn published retrieval / ranking results into tidy size-ladder CSVs for ``rerank-scaling backtest``.

Standalone (standard library only; shares the git helpers of ``convert.py`` beside it), no network.
It reads three git snapshots fetched beforehand (see README.md in this folder for provenance):

* embeddings-benchmark/results (commit f4cc6c8b365a3c779dbc708d6affe0b0355b2ddf): MTEB result JSONs
  ``results/<org>__<model>/<revision>/<Task>.json`` and their ``model_meta.json``
  -> ``arctic-embed.csv``, ``f2llm-v2.csv``
* UKPLab/sentence-transformers (commit 85ec64559f4414aa536eca4bf53538291e0a333f): the MS MARCO
  cross-encoder table in ``docs/pretrained-models/ce-msmarco.md`` (checked against the copy in
  ``docs/cross_encoder/pretrained_models.md``) -> ``ce-msmarco-v2.csv``
* mlfoundations/open_clip (commit 89fb801f1e6087880e951fc8354b8a2077b79c6d):
  ``docs/openclip_retrieval_results.csv`` -> ``clip-openai-resnet.csv``, ``openclip-laion2b.csv``

Usage::

    python convert_retrieval.py [--mteb-results-git DIR] [--st-git DIR] [--openclip-git DIR] [--out DIR]

Every CSV has the columns ``objective, model, params, total_params, size_axis, metric, value,
eval_set``; ``size_axis`` says what ``params`` counts (one value per file).  Non-embedding counts of
BERT-style encoders are computed here from the architecture; where the source publishes a total
(arctic-embed), embedding + non-embedding must reproduce it exactly, else the script stops.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
from pathlib import Path

from convert import git_json, git_text, write

MTEB_RESULTS_COMMIT = "f4cc6c8b365a3c779dbc708d6affe0b0355b2ddf"
ST_COMMIT = "85ec64559f4414aa536eca4bf53538291e0a333f"
OPENCLIP_COMMIT = "89fb801f1e6087880e951fc8354b8a2077b79c6d"

COLUMNS = ("objective", "model", "params", "total_params", "size_axis", "metric", "value", "eval_set")


# --- parameter counts of BERT-style encoders, from the architecture -------------------------------

def bert_layer(h: int, f: int) -> int:
    """One post-LN BERT layer: Q, K, V, O with biases, two LayerNorms, a biased FFN h->f->h."""
    return 4 * (h * h + h) + 2 * h + (h * f + f) + (f * h + h) + 2 * h


def nomic_layer(h: int, f: int) -> int:
    """One nomic-bert layer (nomic-embed-text-v1): fused Wqkv and output projection without biases,
    SwiGLU FFN (fc11, fc12: h->f, fc2: f->h) without biases, two LayerNorms."""
    return 3 * h * h + h * h + 3 * h * f + 2 * (2 * h)


def embedding_params(vocab: int, h: int, positions: int, types: int) -> int:
    """Token + absolute position + token-type embeddings and the embedding LayerNorm."""
    return (vocab + positions + types) * h + 2 * h


# --- MS MARCO cross-encoders (sentence-transformers), version 2 ---------------------------------

# (layers, hidden, ffn): MiniLM-L*-H384 (layer-truncated microsoft/MiniLM-L12-H384-uncased) and the
# 2-layer, 128-wide TinyBERT/BERT-Tiny shape.  BERT uncased vocabulary (30522), 512 positions, 2 types.
CE_V2 = {
    "cross-encoder/ms-marco-TinyBERT-L2-v2": (2, 128, 512),
    "cross-encoder/ms-marco-MiniLM-L2-v2": (2, 384, 1536),
    "cross-encoder/ms-marco-MiniLM-L4-v2": (4, 384, 1536),
    "cross-encoder/ms-marco-MiniLM-L6-v2": (6, 384, 1536),
    "cross-encoder/ms-marco-MiniLM-L12-v2": (12, 384, 1536),
}
CE_EVALS = (("trec-dl-2019", "ndcg@10"), ("msmarco-dev", "mrr@10"))


def _ce_table(text: str, path: str) -> dict[str, tuple[float, float]]:
    """{model: (NDCG@10 TREC DL 19, MRR@10 MS MARCO dev)} for the version-2 models in a markdown table."""
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3:
            continue
        m = re.search(r"cross-encoder/ms-marco-[A-Za-z0-9-]+-v2", cells[0])
        if m and m.group(0) in CE_V2:
            out[m.group(0)] = (float(cells[1]), float(cells[2]))
    if set(out) != set(CE_V2):
        raise SystemExit(f"{path}: version-2 rows {sorted(out)} != {sorted(CE_V2)}")
    return out


def ce_msmarco(repo: Path) -> list[dict]:
    main_path, copy_path = "docs/pretrained-models/ce-msmarco.md", "docs/cross_encoder/pretrained_models.md"
    table = _ce_table(git_text(repo, ST_COMMIT, main_path), main_path)
    copy = _ce_table(git_text(repo, ST_COMMIT, copy_path), copy_path)
    if table != copy:
        raise SystemExit(f"{main_path} and {copy_path} disagree: {table} vs {copy}")
    rows = []
    for model, (layers, h, f) in CE_V2.items():
        non_embedding = layers * bert_layer(h, f) + (h * h + h) + (h + 1)  # + pooler + 1-logit head
        total = embedding_params(30522, h, 512, 2) + non_embedding
        for (eval_set, metric), percent in zip(CE_EVALS, table[model]):
            rows.append(dict(objective="ce-msmarco-v2", model=model, params=non_embedding, total_params=total,
                             size_axis="non-embedding", metric=metric, value=round(percent / 100, 6),
                             eval_set=eval_set))
    return rows


# --- MTEB result files ----------------------------------------------------------------------------

# MTEB (v1) English retrieval tasks (BEIR; nDCG@10 and recall@100; MSMARCO on dev) and reranking tasks (MAP).
BEIR15 = ("ArguAna", "ClimateFEVER", "CQADupstackRetrieval", "DBPedia", "FEVER", "FiQA2018", "HotpotQA",
          "MSMARCO", "NFCorpus", "NQ", "QuoraRetrieval", "SCIDOCS", "SciFact", "Touche2020", "TRECCOVID")
RERANK4 = ("AskUbuntuDupQuestions", "MindSmallReranking", "SciDocsRR", "StackOverflowDupQuestions")
# The retrieval and reranking tasks of the MTEB(eng, v2) benchmark.
ENG_V2_RETRIEVAL = ("ArguAna", "CQADupstackGamingRetrieval", "CQADupstackUnixRetrieval", "ClimateFEVERHardNegatives",
                    "FEVERHardNegatives", "FiQA2018", "HotpotQAHardNegatives", "SCIDOCS", "TRECCOVID",
                    "Touche2020Retrieval.v3")
ENG_V2_RERANKING = ("AskUbuntuDupQuestions", "MindSmallReranking")


def _scores(d: dict, path: str, split: str) -> dict:
    """The one ``default`` score entry of ``split`` in an MTEB result file."""
    entries = d["scores"].get(split)
    if not entries or len(entries) != 1 or entries[0].get("hf_subset", "default") != "default":
        raise SystemExit(f"{path}: expected one 'default' score entry in split '{split}'")
    return entries[0]


# Snowflake arctic-embed v1: backbone shape (vocab, hidden, positions, token types, layers, ffn, layer kind).
ARCTIC = {
    "xs": (30522, 384, 512, 2, 6, 1536, bert_layer),        # from sentence-transformers/all-MiniLM-L6-v2
    "s": (30522, 384, 512, 2, 12, 1536, bert_layer),        # from intfloat/e5-small-unsupervised
    "m": (30522, 768, 512, 2, 12, 3072, bert_layer),        # from intfloat/e5-base-unsupervised
    "m-long": (30528, 768, 0, 2, 12, 3072, nomic_layer),    # from nomic-ai/nomic-embed-text-v1-unsupervised
    "l": (30522, 1024, 512, 2, 24, 4096, bert_layer),       # from intfloat/e5-large-unsupervised
}


def arctic(repo: Path) -> list[dict]:
    rows = []
    for size, (vocab, h, positions, types, layers, f, layer) in ARCTIC.items():
        folder = f"results/Snowflake__snowflake-arctic-embed-{size}/external"
        total = int(git_json(repo, MTEB_RESULTS_COMMIT, f"{folder}/model_meta.json")["n_parameters"])
        non_embedding = layers * layer(h, f)
        if embedding_params(vocab, h, positions, types) + non_embedding != total:
            raise SystemExit(f"{folder}: n_parameters {total} does not match the {size} backbone shape")
        model = f"Snowflake/snowflake-arctic-embed-{size}"
        base = dict(objective="arctic-embed-v1", model=model, params=non_embedding, total_params=total,
                    size_axis="non-embedding")
        for task in BEIR15 + RERANK4:
            path = f"{folder}/{task}.json"
            d = git_json(repo, MTEB_RESULTS_COMMIT, path)
            s = _scores(d, path, "dev" if task == "MSMARCO" else "test")
            metrics = (("ndcg@10", "ndcg_at_10"), ("recall@100", "recall_at_100")) if task in BEIR15 else (("map", "map"),)
            for metric, key in metrics:
                rows.append(dict(base, metric=metric, value=float(s[key]), eval_set=task))
    return rows


# F2LLM-v2: the result folder (model revision) of each size in the results repository.
F2LLM_V2 = {
    "80M": "35baae5091e26211dbe628f1723448c146fafdf2",
    "160M": "9eb35007d12e8624e6bf3e9e35d2255b5269597f",
    "330M": "b0e8e19bdf603b9826422852572c0d18d482c414",
    "0.6B": "54b4e2dc74e01be7126d4cf5f016af6b21edc563",
    "1.7B": "3766d46e7a68545ed6190c15330983f9b39ab718",
    "4B": "e04d1a04f4a0e154bf43969d3dcc596bbd92b1f8",
    "8B": "5ac7d57351026337281e8e6a23e05cce16e79415",
    "14B": "e42037a37e12999db44ce8e1a0e63c366c273f6a",
}
QWEN3_VOCAB = 151_669  # rows of every F2LLM-v2 token-embedding matrix (n_embedding_parameters / hidden)


def f2llm_v2(repo: Path) -> list[dict]:
    rows = []
    for size, revision in F2LLM_V2.items():
        folder = f"results/codefuse-ai__F2LLM-v2-{size}/{revision}"
        meta = git_json(repo, MTEB_RESULTS_COMMIT, f"{folder}/model_meta.json")
        total, embedding = int(meta["n_parameters"]), int(meta["n_embedding_parameters"])
        if meta["revision"] != revision or embedding % QWEN3_VOCAB:
            raise SystemExit(f"{folder}/model_meta.json: unexpected revision or embedding count")
        base = dict(objective="f2llm-v2", model=f"codefuse-ai/F2LLM-v2-{size}", params=total - embedding,
                    total_params=total, size_axis="non-embedding")
        for task in ENG_V2_RETRIEVAL + ENG_V2_RERANKING:
            path = f"{folder}/{task}.json"
            s = _scores(git_json(repo, MTEB_RESULTS_COMMIT, path), path, "test")
            metrics = (("ndcg@10", "ndcg_at_10"),) + ((("recall@100", "recall_at_100"),) if task in ENG_V2_RETRIEVAL else ())
            for metric, key in metrics:
                rows.append(dict(base, metric=metric, value=float(s[key]), eval_set=task))
    return rows


# --- zero-shot image-text retrieval (OpenCLIP's benchmark table) ----------------------------------

CLIP_LADDERS = {
    # OpenAI CLIP ResNets (Radford et al. 2021): one recipe, 32 epochs of WIT-400M.
    "clip-openai-resnet": [("RN50", "openai"), ("RN101", "openai"), ("RN50x4", "openai"), ("RN50x16", "openai"),
                           ("RN50x64", "openai")],
    # OpenCLIP ViTs trained on LAION-2B for 32-39B samples (hyperparameters differ by size).
    "openclip-laion2b": [("ViT-B-16", "laion2b_s34b_b88k"), ("ViT-L-14", "laion2b_s32b_b82k"),
                         ("ViT-H-14", "laion2b_s32b_b79k"), ("ViT-g-14", "laion2b_s34b_b88k"),
                         ("ViT-bigG-14", "laion2b_s39b_b160k")],
}
# (column prefix, eval_set): "image retr." = text->image, "text retr." = image->text.
CLIP_EVALS = (("Flickr image retr.", "flickr30k-image-retrieval"), ("Flickr text retr.", "flickr30k-text-retrieval"),
              ("MSCOCO image retr.", "mscoco-image-retrieval"), ("MSCOCO text retr.", "mscoco-text-retrieval"))


def clip(repo: Path) -> dict[str, list[dict]]:
    path = "docs/openclip_retrieval_results.csv"
    table = {(r["name"], r["pretrained"]): r for r in csv.DictReader(io.StringIO(git_text(repo, OPENCLIP_COMMIT, path)))}
    out = {}
    for ladder, models in CLIP_LADDERS.items():
        rows = []
        for name, pretrained in models:
            r = table.get((name, pretrained))
            if r is None:
                raise SystemExit(f"{path}: no row {name},{pretrained}")
            params = round(float(r["params (M)"]) * 1e6)
            for prefix, eval_set in CLIP_EVALS:
                for k in (1, 5, 10):
                    rows.append(dict(objective=ladder, model=f"{name}:{pretrained}", params=params, total_params=params,
                                     size_axis="total", metric=f"recall@{k}", value=float(r[f"{prefix} R@{k}"]),
                                     eval_set=eval_set))
        out[ladder] = rows
    return out


def main() -> None:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mteb-results-git", type=Path, default=Path("/work/.mirror/embeddings-benchmark+results/repo"))
    ap.add_argument("--st-git", type=Path, default=Path("/work/.mirror/UKPLab+sentence-transformers/repo"))
    ap.add_argument("--openclip-git", type=Path, default=Path("/work/.mirror/mlfoundations+open_clip/repo"))
    ap.add_argument("--out", type=Path, default=here)
    args = ap.parse_args()
    write(args.out / "ce-msmarco-v2.csv", ce_msmarco(args.st_git), COLUMNS)
    write(args.out / "arctic-embed.csv", arctic(args.mteb_results_git), COLUMNS)
    write(args.out / "f2llm-v2.csv", f2llm_v2(args.mteb_results_git), COLUMNS)
    for ladder, rows in clip(args.openclip_git).items():
        write(args.out / f"{ladder}.csv", rows, COLUMNS)


if __name__ == "__main__":
    main()
