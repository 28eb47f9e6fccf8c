#!/usr/bin/env bash
# The CUDA paths on one GPU, in one pass: the tests with the GPU visible (trainers pick bf16 autocast),
# the quickstart end to end, the speed benchmarks on the GPU, LoRA PPO's memory on a ~0.5B model,
# bf16 / QLoRA / torch.compile runs, and an FSDP run under accelerate launch.
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

step "vLLM generation for online RL (--sampler vllm): weights pushed each step, log-prob gap logged"
if "$PY" -c "import vllm" 2>/dev/null; then
  timeout 300 "$PY" -m pytest -q -p no:cacheprovider tests/test_vllm_sampler.py; echo "vllm tests exit $?"
  timeout 240 "$PY" -m rlhfkit ppo --model /tmp/gpu_quickstart/sft --reward gold --advantage grpo --max-steps 8 \
    --prompts-per-step 16 --group-size 4 --max-new-tokens 64 --sampler vllm --no-progress --out /tmp/gpu_ppo_vllm
  echo "ppo --sampler vllm exit $?"; tail -1 /tmp/gpu_ppo_vllm/metrics.jsonl
else
  echo "vLLM does not import here: --sampler vllm not run (pip install vllm where the machine can reach the index)"
fi

step "LoRA PPO vs full PPO on a ~0.5B random Llama (32 layers, width 1024), bf16 autocast: peak RSS and CUDA memory"
timeout 240 "$PY" bench/lora_memory.py --hidden 1024 --layers 32 --intermediate 4096 --steps 3 --new-tokens 32 \
  --json "$OUTDIR/lora_memory_0.5b.json"

step "bf16 and QLoRA: 3 SFT steps on the tiny model with --dtype bf16, then LoRA on a 4-bit base (bitsandbytes)"
timeout 60 "$PY" -m rlhfkit sft --model tiny --builtin-size 256 --max-steps 3 --dtype bf16 --no-progress \
  --out /tmp/gpu_bf16_sft
"$PY" -c "import bitsandbytes" 2>/dev/null && timeout 90 "$PY" -m rlhfkit sft --model /tmp/gpu_bf16_sft \
  --builtin-size 256 --max-steps 3 --lora-r 8 --load-in-4bit --no-progress --out /tmp/gpu_qlora_sft \
  || echo "bitsandbytes does not import here: QLoRA not run"

step "--torch-compile: 20 SFT steps on the tiny model, compiled (inductor) and not"
for flag in --no-torch-compile --torch-compile; do
  SECONDS=0
  timeout 150 "$PY" -m rlhfkit sft --model tiny --builtin-size 512 --max-steps 20 --no-progress $flag \
    --out /tmp/gpu_compile$flag
  echo "sft $flag exit $? after ${SECONDS}s"
done

# accelerate turns FSDP on only for GPU-like devices (not for CPU processes), so with one GPU this is one
# FSDP process: the wrapping and the full-state-dict save are exercised, the sharding across ranks is not
step "FSDP2 under accelerate launch: 3 SFT steps (two processes on two GPUs, else one on the one GPU)"
LAUNCH="$(dirname "$(command -v "$PY")")/accelerate"; [ -x "$LAUNCH" ] || LAUNCH=accelerate
NPROC=$(nvidia-smi -L | wc -l); [ "$NPROC" -ge 2 ] && NPROC=2
timeout 180 "$LAUNCH" launch --num_processes "$NPROC" --num_machines 1 --mixed_precision no \
  --dynamo_backend no --use_fsdp --fsdp_version 2 --fsdp_auto_wrap_policy TRANSFORMER_BASED_WRAP \
  --fsdp_transformer_layer_cls_to_wrap LlamaDecoderLayer --fsdp_state_dict_type FULL_STATE_DICT \
  -m rlhfkit sft --model tiny --builtin-size 256 --max-steps 3 --batch-size 4 --dtype fp32 --no-progress \
  --out /tmp/gpu_fsdp_sft
echo "fsdp exit $?"
"$PY" -c "from transformers import AutoModelForCausalLM as M; m = M.from_pretrained('/tmp/gpu_fsdp_sft'); print('fsdp checkpoint reloads:', sum(p.numel() for p in m.parameters()), 'parameters')"

step done
