#!/usr/bin/env bash
# GPU check, one script, under 8 minutes on one GPU (each step has its own time limit):
#   1. scoring throughput, ours vs sentence-transformers' CrossEncoder.predict (MiniLM-2L, bf16, --device cuda)
#   2. training throughput, ours vs sentence-transformers' CrossEncoderTrainer (MiniLM-2L, bf16)
#   3. tokens/s, MFU and peak memory of a 151M-parameter (non-embedding) cross-encoder in bf16, beside the
#      memory estimate the dry run and the pre-start check use
#   4. with 2+ GPUs: 1 GPU vs 2 (DDP, FSDP; NCCL) train the same trajectory and evaluate to the same rows
# Offline: MiniLM comes from its PyPI package, the 151M model is randomly initialised, the data is Cranfield
# from DATA_ROOT (default ../shared). Needs a CUDA torch and `pip install -e '.[bench]'`.
#
#   DATA_ROOT=/path/to/shared OUT=runs/gpu-check bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
DATA_ROOT=${DATA_ROOT:-../shared}
OUT=${OUT:-runs/gpu-check}
mkdir -p "$OUT"
status=0
step() {  # step NAME SECONDS COMMAND...: run with a time limit, keep its output, go on after a failure
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s)"
    if ! timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"; then
        echo "!! $name failed or ran out of time"
        status=1
    fi
}
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv | tee "$OUT/gpus.csv"
GPUS=$(python -c "import torch; print(torch.cuda.device_count())")
step rerank 80 python benchmarks/rerank_throughput.py --device cuda --bf16 --queries 45 --repeats 3 \
    --data-root "$DATA_ROOT"
step train 120 python benchmarks/train_throughput.py --device cuda --bf16 --steps 30 --repeats 2 \
    --data-root "$DATA_ROOT"
step mfu 80 python benchmarks/mfu.py --layers 12 --hidden 1024 --heads 16 --batch 16 --group 8 --length 256 --steps 20
step mfu-checkpointing 60 python benchmarks/mfu.py --layers 12 --hidden 1024 --heads 16 --batch 16 --group 8 \
    --length 256 --steps 10 --gradient-checkpointing
if [ "$GPUS" -ge 2 ]; then
    step ddp 130 python benchmarks/ddp_check.py --data-root "$DATA_ROOT"
else
    echo "== ddp: $GPUS GPU, the 2-GPU equivalence needs 2 -- skipped" | tee "$OUT/ddp.txt"
fi
echo "outputs in $OUT; exit $status"
exit $status
