#!/usr/bin/env bash
# The CUDA paths on one GPU, in one pass: the tests with the GPU visible (trainers pick bf16 autocast),
# the quickstart end to end, and the speed benchmarks on the GPU.
#
#     bash bench/gpu_check.sh OUTDIR [PYTHON]
#
# Each step has its own time limit so that a slow one leaves the rest their turn; everything is
# logged to OUTDIR/log and the quickstart's report.json is copied to OUTDIR. Uses the Python given
# (default python3) with rlhfkit importable from src/ (no install needed).
set -u
OUTDIR=${1:?usage: bench/gpu_check.sh OUTDIR [PYTHON]}
PY=${2:-python3}
mkdir -p "$OUTDIR"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
exec > >(tee -a "$OUTDIR/log") 2>&1

step() { echo; echo "=== $1 ($(date +%T))"; }

step environment
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__,
'cuda', torch.cuda.is_available(), 'bf16', torch.cuda.is_available() and torch.cuda.is_bf16_supported())"

step "tests with the GPU visible (feedback web tests left out: no browser or PostgreSQL here)"
timeout 240 "$PY" -m pytest -q -p no:cacheprovider tests --ignore=tests/feedback --durations=8
echo "pytest exit $?"

step "quickstart (embedded defaults, GPU picked automatically)"
SECONDS=0
timeout 330 "$PY" -m rlhfkit quickstart --out /tmp/gpu_quickstart --no-progress
echo "quickstart exit $? after ${SECONDS}s"
cp /tmp/gpu_quickstart/report.json "$OUTDIR/quickstart_report.json" 2>/dev/null

step "sampler vs generate: tiny model, then a 12-layer 768-wide random Llama"
timeout 40 "$PY" bench/sampler_vs_generate.py --model /tmp/gpu_quickstart/sft --batch 64 --new 96 \
  || timeout 40 "$PY" bench/sampler_vs_generate.py --batch 64 --new 96
timeout 60 "$PY" bench/sampler_vs_generate.py --layers 12 --hidden 768 --batch 64 --new 128

step "online RL throughput (rlhfkit grpo and gae; TRL GRPOTrainer when it imports)"
MODEL=/tmp/gpu_quickstart/sft; [ -d "$MODEL" ] || MODEL=""
ONLY=""; "$PY" -c "import trl" 2>/dev/null || { echo "TRL does not import here: rlhfkit sides only"; ONLY="--only grpo gae"; }
timeout 100 "$PY" bench/online_rl_vs_trl.py ${MODEL:+--model $MODEL} $ONLY --steps 8 --json "$OUTDIR/online_rl.json"

step done
