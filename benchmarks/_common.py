"""Shared set-up of the side-by-side benchmarks (ours vs sentence-transformers).

Both systems get the same model (the MiniLM ladder's rung as a one-logit
``BertForSequenceClassification``, CLS pooling -- the architecture
sentence-transformers' ``CrossEncoder`` uses), the same weights (ST loads a
folder we ``save_pretrained`` ours into), the same data (the pipeline's
``prepare`` on Cranfield from ``--data-root``), the same batch size, max length,
precision, device and torch thread count, in the same process.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import platform
import resource
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_ROOT = str(REPO.parent / "shared")


def temp_dir(prefix: str) -> str:
    """A temporary folder removed when the process exits."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", default=DEFAULT_DATA_ROOT, help="folder laid out like ../shared")
    parser.add_argument("--layers", type=int, default=2, help="MiniLM layers (ladder sizes 1, 2, 3, 4, 6)")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both systems)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for both systems (GPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the best round is reported")
    parser.add_argument("--seed", type=int, default=0)


def quiet() -> None:
    """Silence library chatter (progress bars, info logs, known warnings)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    for name in ("sentence_transformers", "transformers", "lightning", "lightning.pytorch", "lightning.fabric",
                 "accelerate", "datasets", "bm25s", "rerank_scaling"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    with contextlib.suppress(Exception):
        import datasets

        datasets.disable_progress_bars()


def setup_torch(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no GPU")


def autocast(args):
    """bf16 autocast on ``args.device`` when ``--bf16``, else a no-op."""
    if not args.bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(args.device).type, dtype=torch.bfloat16)


def machine_line(args) -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    if args.device.startswith("cuda"):
        dev = torch.cuda.get_device_name(0)
    else:
        dev = f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    precision = "bf16 autocast" if args.bf16 else "fp32"
    return (f"device: {args.device} ({dev}); torch {torch.__version__}, {torch.get_num_threads()} threads; "
            f"precision: {precision}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def load_config(args, **overrides):
    from rerank_scaling.config import EvalSpec, RunConfig

    cache = temp_dir("rerank-bench-cache-")
    os.environ.setdefault("RERANK_SCALING_CACHE", cache)
    base = dict(
        data_root=args.data_root,
        cache_dir=cache,
        ladder="minilm",
        size=f"{args.layers}L",
        pooling="cls",
        max_length=args.max_length,
        rerank_k=100,
        candidates_k=100,
        evals=(EvalSpec("cranfield-test", "cranfield", "test", None, True),),
        seed=args.seed,
    )
    base.update(overrides)
    return RunConfig.from_dict(base).validate()


def build_models(config, args, with_st: bool = True):
    """Our :class:`CrossEncoder` and, from a copy of its weights, sentence-transformers' ``CrossEncoder``."""
    from rerank_scaling.models.cross_encoder import load_cross_encoder

    ours = load_cross_encoder(config.model, seed=config.seed, max_length=config.max_length,
                              max_query_length=config.max_query_length, pooling="cls")
    ours.to(args.device)
    st = None
    folder = None
    if with_st:
        folder = temp_dir("rerank-bench-model-")
        ours.backbone.save_pretrained(folder)
        ours.pairs.tokenizer.save_pretrained(folder)
        st = load_st(folder, config.max_length, args.device)
    return ours, st, folder


def load_st(folder: str, max_length: int, device: str):
    from sentence_transformers import CrossEncoder as STCrossEncoder

    return STCrossEncoder(folder, num_labels=1, max_length=max_length, device=device)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class PeakRSS:
    """Peak resident memory of a phase, in MiB, from ``resource.getrusage``.

    On Linux the kernel's high-water mark is reset (``/proc/self/clear_refs``
    = 5) at the start of the phase, so ``ru_maxrss`` afterwards is the peak of
    that phase even when several phases share the process; elsewhere it is the
    process-wide peak so far (an upper bound), flagged by ``reset=False``.
    """

    def __enter__(self):
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.reset = True
        except OSError:
            self.reset = False
        self.start_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if self.reset else float("nan")
        return self

    def __exit__(self, *exc):
        self.mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        return False


def timer() -> float:
    return time.perf_counter()


def st_minilm_encoder(args):
    """sentence-transformers' SentenceTransformer on the same truncated MiniLM (``args.layers``,
    ``args.max_length``) with mean pooling: the peer of our bi-encoder benchmarks."""
    from sentence_transformers import SentenceTransformer
    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Pooling, Transformer

    from rerank_scaling.models.backbone import minilm_path

    module = Transformer(minilm_path(), max_seq_length=args.max_length,
                         config_kwargs={"num_hidden_layers": args.layers})
    return SentenceTransformer(modules=[module, Pooling(module.get_word_embedding_dimension(), "mean")],
                               device=args.device)
