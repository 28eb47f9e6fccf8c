"""Whole commands as a user waits for them: `rlhfkit dpo` / `rlhfkit ppo --advantage grpo` against TRL's
own training scripts (`python -m trl.scripts.dpo`, `python -m trl.scripts.grpo`), each a fresh process.

What it measures: the wall time of each command from `exec` to exit (interpreter start-up, imports,
model loading, tokenization or dataset preparation, DPO's one-time reference pass, training, saving the
final model), and the peak resident memory of the process tree (its `ru_maxrss`, which covers waited-for
children, taken through `peak_memory.run_with_peak`: a plain `os.wait4` here would report at least this
benchmark's own resident size, torch and TRL imported). Headline: TRL's median wall time / rlhfkit's (above 1: rlhfkit is faster).
The sides alternate run by run (who goes first alternates too), so a change in the machine's load
falls on both.

The same job on both sides:
  1) model: one SFT checkpoint folder (--model; default: the tiny Llama after 300 `train_sft` steps,
     cached under ~/.cache/rlhfkit/bench/ and shared with online_rl_vs_trl.py), fp32 on the CPU;
  2) DPO: the first --pairs pairs of `builtin:assistant` (prompt / chosen / rejected), one JSONL file
     read by both; batch --batch-size, one epoch, max length --max-length (prompt kept, response
     truncated on both sides: TRL's `truncation_mode="keep_start"`), sigmoid loss, beta 0.1, lr
     --dpo-lr, no warmup, cosine to 10% of the peak, AdamW, grad-norm clip 1.0; reference log-probs
     computed once before training on both (rlhfkit always; TRL `precompute_ref_log_probs`, in batches
     of --batch-size x 2 there, like rlhfkit's); no held-out split on either (rlhfkit `--eval-fraction 0`;
     TRL `eval_strategy="no"`), `--with-eval` adds rlhfkit's default held-out evaluation back as an
     extra row (more work on rlhfkit's side, not less);
  3) GRPO: --grpo-steps RL steps of --prompts-per-step prompts x --group-size responses (TRL
     `num_generations`; episodes per step = their product, TRL `generation_batch_size`), at most
     --max-new-tokens new tokens, temperature 1, no top-k / top-p, the gold rubric as the reward
     (`trl_gold_reward.gold` on TRL's side, rlhfkit `--reward gold`), one pass over each step's episodes
     in minibatches of --minibatch-size (TRL `per_device_train_batch_size`, `steps_per_generation`),
     clipped ratio 0.2 on group-normalised advantages, token mean (TRL `loss_type="bnpo"`), beta 0.05 on
     a k3 KL in the loss (rlhfkit `--no-kl-in-reward --kl-estimator k3`), so both run a reference
     forward per step; lr --grpo-lr, no warmup, cosine to 10%; no EOS or length penalty on rlhfkit's side;
  4) what bench/README.md's fairness list asks of TRL: no gradient checkpointing, no bf16 / fp16 on the
     CPU, no evaluation and no checkpoint during training (`save_strategy="no"`, `eval_strategy="no"`),
     no trackers, no progress bars; each TRL run gets a fresh `datasets` cache (a first run pays the
     dataset preparation, as a user's does). rlhfkit runs with its defaults otherwise: it writes its
     resumable checkpoint (model + optimizer) at the last step and metrics.jsonl, which TRL does not.
Threads: the machine's default unless --threads N (then OMP_NUM_THREADS=N for both sides).

Run it:
    .venv/bin/pip install -r bench/requirements.txt                       # trl
    .venv/bin/python bench/whole_command_vs_trl.py                        # DPO and GRPO, 3 runs per side
    .venv/bin/python bench/whole_command_vs_trl.py --only dpo --repeats 5 --json whole.json
    .venv/bin/python bench/whole_command_vs_trl.py --model runs/sft --with-eval

Leaves out on purpose: GPUs, multi-process runs, mixed precision, models other than the one given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peak_memory import run_with_peak

BENCH = Path(__file__).resolve().parent
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TQDM_DISABLE": "1",
           "TOKENIZERS_PARALLELISM": "false", "WANDB_DISABLED": "true"}
COMMON_TRL = ["--gradient_checkpointing", "false", "--bf16", "false", "--fp16", "false", "--save_strategy", "no",
              "--eval_strategy", "no", "--report_to", "none", "--disable_tqdm", "true", "--dataloader_num_workers",
              "0", "--warmup_steps", "0", "--lr_scheduler_type", "cosine_with_min_lr", "--lr_scheduler_kwargs",
              '{"min_lr_rate": 0.1}', "--weight_decay", "0.0", "--max_grad_norm", "1.0", "--optim", "adamw_torch",
              "--seed", "0", "--dtype", "float32"]


def write_data(workdir: Path, args) -> tuple[Path, Path]:
    """pairs.jsonl (DPO) and prompts.jsonl (GRPO), each in a folder of its own (TRL's `load_dataset(dir)`)."""
    from rlhfkit.data.records import load_records

    pairs_dir, prompts_dir = workdir / "pairs", workdir / "prompts"
    pairs_dir.mkdir(), prompts_dir.mkdir()
    rows = load_records("builtin:assistant", "preferences", split="train", builtin_size=args.pairs, seed=0).rows
    with open(pairs_dir / "train.jsonl", "w") as f:
        for row in rows[:args.pairs]:
            f.write(json.dumps({k: row[k] for k in ("prompt", "chosen", "rejected")}) + "\n")
    prompts = load_records("builtin:assistant", "prompts", split="train", builtin_size=512, seed=0).rows
    with open(prompts_dir / "train.jsonl", "w") as f:
        for row in prompts:
            f.write(json.dumps({"prompt": row["prompt"]}) + "\n")
    return pairs_dir, prompts_dir


def commands(job: str, model: Path, data: Path, out: Path, args, with_eval: bool = False) -> dict[str, list[str]]:
    """The two command lines of one job (rlhfkit first)."""
    py = sys.executable
    if job == "dpo":
        ours = [py, "-m", "rlhfkit", "dpo", "--model", str(model), "--data", str(data / "train.jsonl"),
                "--out", str(out / "rlhfkit"), "--batch-size", str(args.batch_size), "--epochs", "1",
                "--max-length", str(args.max_length), "--lr", str(args.dpo_lr), "--warmup-ratio", "0",
                "--min-lr-ratio", "0.1", "--beta", "0.1", "--no-progress", "--dtype", "fp32"]
        if not with_eval:
            ours += ["--eval-fraction", "0"]
        theirs = [py, "-m", "trl.scripts.dpo", "--model_name_or_path", str(model), "--dataset_name", str(data),
                  "--output_dir", str(out / "trl"), "--per_device_train_batch_size", str(args.batch_size),
                  "--num_train_epochs", "1", "--max_length", str(args.max_length), "--truncation_mode",
                  "keep_start", "--learning_rate", str(args.dpo_lr), "--beta", "0.1", "--loss_type", "sigmoid",
                  "--precompute_ref_log_probs", "true", "--precompute_ref_batch_size", str(2 * args.batch_size),
                  "--logging_steps", "10", *COMMON_TRL]
        return {"rlhfkit": ours, "TRL": theirs}
    episodes = args.prompts_per_step * args.group_size
    ours = [py, "-m", "rlhfkit", "ppo", "--model", str(model), "--data", str(data / "train.jsonl"),
            "--out", str(out / "rlhfkit"), "--reward", "gold", "--advantage", "grpo",
            "--group-size", str(args.group_size), "--prompts-per-step", str(args.prompts_per_step),
            "--max-new-tokens", str(args.max_new_tokens), "--temperature", "1.0", "--kl-coef", "0.05",
            "--no-kl-in-reward", "--kl-estimator", "k3", "--ppo-epochs", "1",
            "--minibatch-size", str(args.minibatch_size), "--clip-range", "0.2", "--no-whiten-advantages",
            "--length-penalty", "0", "--max-steps", str(args.grpo_steps), "--lr", str(args.grpo_lr),
            "--warmup-ratio", "0", "--min-lr-ratio", "0.1", "--no-progress", "--dtype", "fp32"]
    theirs = [py, "-m", "trl.scripts.grpo", "--model_name_or_path", str(model), "--dataset_name", str(data),
              "--output_dir", str(out / "trl"), "--reward_funcs", "trl_gold_reward.gold",
              "--per_device_train_batch_size", str(args.minibatch_size),
              "--steps_per_generation", str(episodes // args.minibatch_size), "--num_generations",
              str(args.group_size), "--num_iterations", "1", "--max_completion_length", str(args.max_new_tokens),
              "--temperature", "1.0", "--top_p", "1.0", "--top_k", "0", "--beta", "0.05", "--epsilon", "0.2",
              "--loss_type", "bnpo", "--scale_rewards", "group",
              "--max_steps", str(args.grpo_steps * episodes // args.minibatch_size),
              "--learning_rate", str(args.grpo_lr), "--logging_steps", str(episodes // args.minibatch_size),
              "--log_completions", "false", *COMMON_TRL]
    return {"rlhfkit": ours, "TRL": theirs}


def run_once(argv: list[str], env: dict[str, str], log: Path) -> dict:
    """Wall seconds and peak RSS (MiB, the process tree) of one command; its output goes to `log`."""
    with open(log, "w") as sink:
        start = time.perf_counter()
        code, peak_mib, _ = run_with_peak(argv, env, stdout=sink, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"command failed ({code}): {' '.join(argv)}\n"
                         + "\n".join(log.read_text().splitlines()[-30:]))
    return {"seconds": seconds, "peak_rss_mib": peak_mib}


def run_job(job: str, model: Path, data: Path, workdir: Path, args, with_eval: bool = False) -> dict:
    base = dict(os.environ, **OFFLINE)
    base["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH), base.get("PYTHONPATH", "")) if p)
    if args.threads:
        base["OMP_NUM_THREADS"] = str(args.threads)
    runs: dict[str, list[dict]] = {"rlhfkit": [], "TRL": []}
    for r in range(args.repeats):
        order = ["rlhfkit", "TRL"] if r % 2 == 0 else ["TRL", "rlhfkit"]
        for side in order:
            out = Path(tempfile.mkdtemp(dir=workdir, prefix=f"{job}-{side}-{r}-"))
            env = dict(base, HF_DATASETS_CACHE=str(out / "datasets-cache"), HF_HOME=str(out / "hf-home"))
            argv = commands(job, model, data, out, args, with_eval)[side]
            result = run_once(argv, env, out / "log.txt")
            runs[side].append(result)
            print(f"  {job} {side:8s} run {r + 1}: {result['seconds']:7.1f} s  peak {result['peak_rss_mib']:6.0f} MiB"
                  f"  (load {os.getloadavg()[0]:.1f})", flush=True)
    medians = {side: statistics.median(x["seconds"] for x in rs) for side, rs in runs.items()}
    peaks = {side: max(x["peak_rss_mib"] for x in rs) for side, rs in runs.items()}
    return {"runs": runs, "median_s": medians, "peak_rss_mib": peaks, "ratio": medians["TRL"] / medians["rlhfkit"],
            "commands": commands(job, model, data, workdir / "OUT", args, with_eval)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="SFT checkpoint folder (default: the cached 300-step tiny SFT model)")
    parser.add_argument("--only", choices=["dpo", "grpo"], nargs="+", default=["dpo", "grpo"])
    parser.add_argument("--repeats", type=int, default=3, help="runs per side (alternating)")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for both sides (default: the machine's)")
    parser.add_argument("--pairs", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=16, help="DPO pairs per step")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--dpo-lr", type=float, default=1e-4)
    parser.add_argument("--grpo-steps", type=int, default=16)
    parser.add_argument("--prompts-per-step", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--minibatch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--grpo-lr", type=float, default=1e-5)
    parser.add_argument("--with-eval", action="store_true", help="also time rlhfkit dpo with its held-out evaluation")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    sys.path.insert(0, str(BENCH))
    from online_rl_vs_trl import sft_checkpoint

    model = sft_checkpoint(argparse.Namespace(model=args.model, sft_steps=300, seed=0))
    import torch
    import transformers
    import trl

    print(f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, transformers "
          f"{transformers.__version__}, trl {trl.__version__}; threads: {args.threads or 'default'}; model {model}")
    results: dict = {"args": vars(args), "model": str(model)}
    with tempfile.TemporaryDirectory(prefix="whole-command-") as tmp:
        workdir = Path(tmp)
        pairs_dir, prompts_dir = write_data(workdir, args)
        for job in args.only:
            data = pairs_dir if job == "dpo" else prompts_dir
            results[job] = run_job(job, model, data, workdir, args)
            if job == "dpo" and args.with_eval:
                results["dpo_with_eval"] = run_job(job, model, data, workdir, args, with_eval=True)
    print("\njob            rlhfkit s   TRL s   TRL/rlhfkit   peak MiB rlhfkit / TRL")
    for job in [j for j in ("dpo", "dpo_with_eval", "grpo") if j in results]:
        r = results[job]
        print(f"{job:13s} {r['median_s']['rlhfkit']:9.1f} {r['median_s']['TRL']:7.1f} {r['ratio']:12.2f}x"
              f"   {r['peak_rss_mib']['rlhfkit']:7.0f} / {r['peak_rss_mib']['TRL']:.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
