"""DPO and reward-model training throughput of rlhfkit against TRL, side by side in one process.

What it measures: optimizer steps per second, printed as preference pairs/s, of
  - DPO:  `rlhfkit.trainers.dpo.train_dpo`  vs  `trl.DPOTrainer`
  - RM:   `rlhfkit.trainers.rm.train_rm`    vs  `trl.RewardTrainer`
and the ratio rlhfkit / TRL (above 1: rlhfkit is faster); then the DPO and RM losses of both at
matching steps, which should agree when both compute the same objective on the same batches.

Both sides are given exactly the same job:
  1) model: the untrained `--model tiny` Llama (`build_tiny(seed)`, no SFT first) saved to a temporary
     folder; for the RM, `AutoModelForSequenceClassification` loaded from it with num_labels=1 (its fresh
     scalar head seeded) and saved again, so both sides start from identical weights;
  2) data: the first steps x batch-size training pairs of `builtin:assistant` (prompt/chosen/rejected),
     written to a JSONL file for rlhfkit (`--eval-fraction 0`: no held-out split, no evaluation);
  3) batches: rlhfkit draws its batches itself (shuffled, grouped by length); TRL gets the same rows in
     the same order with `train_sampling_strategy="sequential"`, so step k of both is the same batch.
     The script checks that both tokenize every row to the same token ids. How each side runs a batch
     through the model is its own: TRL pads all 2 x batch responses to the longest and projects every
     position onto the vocabulary; rlhfkit runs them in --length-groups passes padded per group and
     projects only the positions that predict a completion token (`--length-groups 1` leaves only the
     second difference);
  4) optimizer: AdamW (0.9, 0.999), no weight decay, grad-norm clip 1.0, the same lr (rlhfkit's tiny
     defaults: DPO 2e-5, RM 5e-4) and schedule. rlhfkit warms up as (step+1)/(warmup+1), which no HF
     scheduler reproduces, so warmup is off on both sides (rlhfkit `warmup_ratio=0`, TRL
     `warmup_steps=0`); what remains is the same cosine decay to 10% of the peak (rlhfkit
     `min_lr_ratio=0.1`, TRL `cosine_with_min_lr` with `min_lr_rate=0.1`);
  5) DPO: sigmoid loss, beta 0.1, reference log-probs computed once before training on both sides
     (rlhfkit always does; TRL `precompute_ref_log_probs=True`), so no reference forward in the timed
     steps; `--trl-live-ref` runs TRL's default instead (a reference model forward in every step);
  6) fp32 on CPU, same batch size, max length, steps; no gradient checkpointing (TRL turns it on by
     default: off here), no eval, no checkpoint during the timed steps, losses read every step.
Timing: the wall time between the ends of consecutive optimizer steps, taken by rlhfkit's `on_step`
hook and a TRL `TrainerCallback.on_step_end`; the first --warmup steps and the last step (rlhfkit
writes its checkpoint and final model inside it) are left out. Headline: batch size / median step time
(robust to other jobs on a shared machine); the mean (all pairs / all seconds) is printed too.

Run it:
    .venv/bin/pip install -r bench/requirements.txt                  # trl
    .venv/bin/python bench/dpo_rm_vs_trl.py                          # 30 steps each, about 2 minutes
    .venv/bin/python bench/dpo_rm_vs_trl.py --steps 120 --repeats 3 --json dpo_rm.json
    .venv/bin/python bench/dpo_rm_vs_trl.py --threads 1                # steadier on a busy machine
    .venv/bin/python bench/dpo_rm_vs_trl.py --only dpo --trl-live-ref
    .venv/bin/python bench/dpo_rm_vs_trl.py --only dpo --length-groups 1  # rlhfkit in one padded forward

Leaves out on purpose: start-up (model loading, tokenization, the one-time reference pass, TRL's
dataset mapping), evaluation and checkpointing; GPUs, mixed precision and multi-process runs; models
larger than the tiny one (pass --batch-size / --max-length to change the shape of the work); rlhfkit's
default warmup (see 4).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "TQDM_DISABLE"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

DPO_LR, RM_LR = 2e-5, 5e-4  # rlhfkit's defaults for the tiny model (trainers/dpo.py, trainers/rm.py)
BETA, MIN_LR_RATIO, MAX_GRAD_NORM = 0.1, 0.1, 1.0


@dataclass
class Run:
    """One training run: wall-clock stamp at the end of each step, and the logged loss per step."""

    name: str
    stamps: list[float] = field(default_factory=list)
    losses: dict[int, float] = field(default_factory=dict)
    lrs: dict[int, float] = field(default_factory=dict)

    def step_seconds(self, warmup: int) -> list[float]:
        """Durations of steps warmup+1 .. last-1 (stamps[k] closes step k+1)."""
        return [self.stamps[k] - self.stamps[k - 1] for k in range(warmup, len(self.stamps) - 1)]


@dataclass
class Setup:
    workdir: Path
    lm_dir: Path
    rm_dir: Path
    jsonl: Path
    rows_in_batch_order: list[dict]


def prepare(workdir: Path, n_pairs: int, batch_size: int, max_length: int, seed: int,
            model_dir: str | None = None, need_rm: bool = True) -> Setup:
    """Save the shared model folders and data; work out rlhfkit's batch order for TRL."""
    from transformers import AutoModelForSequenceClassification

    from rlhfkit.data.records import load_records
    from rlhfkit.data.tokenization import encode_preferences as encode_pairs
    from rlhfkit.data.tokenization import global_batches
    from rlhfkit.models.loading import build_tiny, load_tokenizer

    # 1) one set of weights for both sides
    lm_dir, rm_dir = workdir / "tiny-lm", workdir / "tiny-rm"
    if model_dir:  # --model: a causal-LM folder (for example bench/scale_vs_trl.py's random 113M Llama)
        from transformers import AutoModelForCausalLM

        model, tokenizer = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32), load_tokenizer(model_dir)
    else:
        model, tokenizer = build_tiny(seed)
    model.save_pretrained(lm_dir)
    tokenizer.save_pretrained(lm_dir)
    del model
    if need_rm:
        torch.manual_seed(seed)  # the fresh scalar head
        classifier = AutoModelForSequenceClassification.from_pretrained(lm_dir, num_labels=1)
        classifier.config.pad_token_id = tokenizer.pad_token_id
        classifier.save_pretrained(rm_dir)
        tokenizer.save_pretrained(rm_dir)
        del classifier

    # 2) the same pairs for both, exactly one epoch of `steps` batches
    rows = load_records("builtin:assistant", "preferences", split="train", builtin_size=n_pairs, seed=seed).rows
    rows = [{k: row[k] for k in ("prompt", "chosen", "rejected")} for row in rows[:n_pairs]]
    jsonl = workdir / "train.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))

    # 3) the order rlhfkit will draw them in (both trainers compute lengths as chosen + rejected tokens)
    records = load_records(str(jsonl), "preferences", split="train", seed=seed)
    pairs = encode_pairs(records, load_tokenizer(str(lm_dir)), max_length)
    lengths = [len(chosen) + len(rejected) for chosen, rejected in pairs]
    batches = global_batches(lengths, batch_size, seed, 0, True)
    return Setup(workdir, lm_dir, rm_dir, jsonl, [records.rows[i] for batch in batches for i in batch])


def common_config(args, out: Path) -> dict:
    return dict(data=None, out=str(out), eval_fraction=0.0, batch_size=args.batch_size, max_length=args.max_length,
                max_steps=args.steps, warmup_ratio=0.0, min_lr_ratio=MIN_LR_RATIO, max_grad_norm=MAX_GRAD_NORM,
                weight_decay=0.0, seed=args.seed, dtype="fp32", group_by_length=True, log_every=10**9,
                save_every=10**9, resume=False, progress=False)


def hook(run: Run):
    def on_step(step: int, record: dict) -> None:
        run.stamps.append(time.perf_counter())
        # record["lr"] is the lr this step was taken with, as TRL logs it
        run.losses[step], run.lrs[step] = record["loss"], record["lr"]
    return on_step


def run_rlhfkit(kind: str, setup: Setup, args) -> Run:
    run = Run(f"rlhfkit {kind}")
    with tempfile.TemporaryDirectory(dir=setup.workdir) as out:
        config = common_config(args, Path(out)) | {"data": str(setup.jsonl)}
        if kind == "dpo":
            from rlhfkit.trainers.dpo import DPOConfig, train_dpo

            groups = {} if args.length_groups is None else {"length_groups": args.length_groups}
            if args.shared_prompt is not None:
                groups["shared_prompt"] = args.shared_prompt
            train_dpo(DPOConfig(**config, model=str(setup.lm_dir), lr=DPO_LR, beta=BETA, loss_type="sigmoid",
                                **groups), on_step=hook(run))
        else:
            from rlhfkit.trainers.rm import RMConfig, train_rm

            train_rm(RMConfig(**config, model=str(setup.rm_dir), lr=RM_LR, loss="bradley_terry"), on_step=hook(run))
    return run


def trl_arguments(args, out: Path, lr: float) -> dict:
    return dict(output_dir=str(out), per_device_train_batch_size=args.batch_size, gradient_accumulation_steps=1,
                max_steps=args.steps, learning_rate=lr, lr_scheduler_type="cosine_with_min_lr",
                lr_scheduler_kwargs={"min_lr_rate": MIN_LR_RATIO}, warmup_steps=0, weight_decay=0.0,
                adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, optim="adamw_torch",
                max_grad_norm=MAX_GRAD_NORM, max_length=args.max_length, gradient_checkpointing=False,
                bf16=False, fp16=False, use_cpu=True, seed=args.seed, data_seed=args.seed,
                train_sampling_strategy="sequential", dataloader_num_workers=0, report_to="none",
                logging_steps=1, save_strategy="no", eval_strategy="no", disable_tqdm=True)


def trl_callback(run: Run):
    from transformers import TrainerCallback

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            run.stamps.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                run.losses[state.global_step] = float(logs["loss"])
                run.lrs[state.global_step] = float(logs.get("learning_rate", float("nan")))

    return Stamp()


def run_trl(kind: str, setup: Setup, args, token_check: dict) -> Run:
    from datasets import Dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        PrinterCallback,
    )

    run = Run(f"TRL {kind}")
    dataset = Dataset.from_list(setup.rows_in_batch_order)
    with tempfile.TemporaryDirectory(dir=setup.workdir) as out:
        if kind == "dpo":
            from trl import DPOConfig, DPOTrainer

            tokenizer = AutoTokenizer.from_pretrained(setup.lm_dir)
            model = AutoModelForCausalLM.from_pretrained(setup.lm_dir, dtype=torch.float32)
            config = DPOConfig(**trl_arguments(args, Path(out), DPO_LR), beta=BETA, loss_type=["sigmoid"],
                               precompute_ref_log_probs=not args.trl_live_ref)
            trainer = DPOTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                                 callbacks=[trl_callback(run)])
            token_check[kind] = compare_tokens(kind, trainer.train_dataset, setup, args.max_length)
        else:
            from trl import RewardConfig, RewardTrainer

            tokenizer = AutoTokenizer.from_pretrained(setup.rm_dir)
            model = AutoModelForSequenceClassification.from_pretrained(setup.rm_dir, num_labels=1,
                                                                       dtype=torch.float32)
            config = RewardConfig(**trl_arguments(args, Path(out), RM_LR), center_rewards_coefficient=None)
            trainer = RewardTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                                    callbacks=[trl_callback(run)])
            token_check[kind] = compare_tokens(kind, trainer.train_dataset, setup, args.max_length)
        trainer.remove_callback(PrinterCallback)  # it prints every log line (disable_tqdm=True adds it)
        trainer.train()
    return run


def compare_tokens(kind: str, trl_dataset, setup: Setup, max_length: int) -> str:
    """How many rows TRL tokenizes differently from rlhfkit (prompt + response + EOS, each side)."""
    from rlhfkit.data.records import Records
    from rlhfkit.data.tokenization import encode_preferences as encode_pairs
    from rlhfkit.models.loading import load_tokenizer

    rows = setup.rows_in_batch_order
    records = Records(rows, [f"row {i}" for i in range(len(rows))], "bench")
    ours = encode_pairs(records, load_tokenizer(str(setup.lm_dir)), max_length)
    if len(trl_dataset) != len(ours):
        return f"TRL kept {len(trl_dataset)} of {len(ours)} rows (length filter): batches differ"
    differ = 0
    for (chosen, rejected), row in zip(ours, trl_dataset):
        if kind == "dpo":
            theirs = (row["prompt_ids"] + row["chosen_ids"], row["prompt_ids"] + row["rejected_ids"])
        else:
            theirs = (row["chosen_ids"], row["rejected_ids"])
        differ += (chosen.input_ids, rejected.input_ids) != tuple(theirs)
    return f"{differ} of {len(ours)} pairs tokenized differently"


def summarize(runs: list[Run], batch_size: int, warmup: int) -> dict:
    seconds = [t for run in runs for t in run.step_seconds(warmup)]
    return {"pairs_per_s": batch_size / statistics.median(seconds),
            "pairs_per_s_mean": batch_size * len(seconds) / sum(seconds),
            "pairs_per_s_best": batch_size / min(seconds),
            "median_step_ms": 1000 * statistics.median(seconds), "timed_steps": len(seconds),
            "step_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per run (one epoch of the data)")
    parser.add_argument("--warmup", type=int, default=5, help="first steps left out of the timing")
    parser.add_argument("--batch-size", type=int, default=16, help="preference pairs per step")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1, help="runs per side, alternating which goes first")
    parser.add_argument("--only", choices=["dpo", "rm"], help="run one of the two comparisons")
    parser.add_argument("--trl-live-ref", action="store_true",
                        help="TRL DPO with its default reference forward in every step (rlhfkit precomputes)")
    parser.add_argument("--length-groups", type=int,
                        help="rlhfkit DPO forward passes per batch (default: rlhfkit's own default)")
    parser.add_argument("--shared-prompt", action=argparse.BooleanOptionalAction, default=None,
                        help="rlhfkit DPO's --shared-prompt (default: rlhfkit's own default)")
    parser.add_argument("--model", help="causal-LM folder both sides start from (default: the untrained tiny Llama)")
    parser.add_argument("--side", choices=["both", "rlhfkit", "trl"], default="both",
                        help="run one side only (its process's peak RSS is then that side's: see scale_vs_trl.py)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch threads for both sides (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args()
    if args.steps < args.warmup + 3:
        parser.error("--steps must be at least --warmup + 3")

    import transformers
    import trl

    if args.threads:
        torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    kinds = [args.only] if args.only else ["dpo", "rm"]
    load_before = os.getloadavg()[0]
    results: dict = {"steps": args.steps, "warmup": args.warmup, "batch_size": args.batch_size,
                     "max_length": args.max_length, "repeats": args.repeats, "trl_live_ref": args.trl_live_ref,
                     "length_groups": args.length_groups, "shared_prompt": args.shared_prompt,
                     "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                                  "trl": trl.__version__},
                     "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads"}
    token_check: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("HF_DATASETS_CACHE", str(Path(tmp) / "datasets-cache"))
        setup = prepare(Path(tmp), args.steps * args.batch_size, args.batch_size, args.max_length, args.seed,
                        args.model, need_rm="rm" in kinds)
        for kind in kinds:
            ours, theirs = [], []
            for r in range(args.repeats):  # alternate who goes first, so drift in machine load hits both
                order = ("rlhfkit", "trl") if r % 2 == 0 else ("trl", "rlhfkit")
                for side in (order if args.side == "both" else (args.side,)):
                    if side == "rlhfkit":
                        ours.append(run_rlhfkit(kind, setup, args))
                    else:
                        theirs.append(run_trl(kind, setup, args, token_check))
            if args.side != "both":  # one side: its throughput and this process's peak resident memory
                results[kind] = {args.side: summarize(ours or theirs, args.batch_size, args.warmup),
                                 "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
                continue
            results[kind] = {"rlhfkit": summarize(ours, args.batch_size, args.warmup),
                             "trl": summarize(theirs, args.batch_size, args.warmup),
                             "tokens": token_check[kind],
                             "loss": {"rlhfkit": ours[0].losses, "trl": theirs[0].losses},
                             "lr": {"rlhfkit": ours[0].lrs, "trl": theirs[0].lrs}}
            results[kind]["ratio"] = results[kind]["rlhfkit"]["pairs_per_s"] / results[kind]["trl"]["pairs_per_s"]
            results[kind]["ratio_mean"] = (results[kind]["rlhfkit"]["pairs_per_s_mean"]
                                           / results[kind]["trl"]["pairs_per_s_mean"])
    results["load_average_1min"] = (load_before, os.getloadavg()[0])
    if args.side != "both":
        for kind in kinds:
            r = results[kind]
            print(f"{kind.upper()} {args.side}: {r[args.side]['pairs_per_s']:.2f} pairs/s (median step), "
                  f"{r[args.side]['pairs_per_s_mean']:.2f} (mean); peak RSS {r['peak_rss_mib']:.0f} MiB")
    else:
        report(results, kinds, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")


def report(results: dict, kinds: list[str], args) -> None:
    v = results["versions"]
    print(f"\nrlhfkit vs TRL {v['trl']} (transformers {v['transformers']}, torch {v['torch']}): tiny Llama, fp32 CPU, "
          f"{results['machine']}; batch {args.batch_size} pairs, max length {args.max_length}, {args.steps} steps "
          f"x {args.repeats} run(s) per side, steps {args.warmup + 1}..{args.steps - 1} timed; 1-min load average "
          f"{results['load_average_1min'][0]:.1f} before, {results['load_average_1min'][1]:.1f} after")
    print(f"  {'':<4}  {'rlhfkit pairs/s':>16}  {'TRL pairs/s':>12}  {'rlhfkit/TRL':>11}  {'mean-based':>10}  "
          f"{'best-step':>9}")
    for kind in kinds:
        r = results[kind]
        best = r["rlhfkit"]["pairs_per_s_best"] / r["trl"]["pairs_per_s_best"]
        print(f"  {kind.upper():<4}  {r['rlhfkit']['pairs_per_s']:>16.1f}  {r['trl']['pairs_per_s']:>12.1f}  "
              f"{r['ratio']:>11.2f}  {r['ratio_mean']:>10.2f}  {best:>9.2f}")
    print("  pairs/s = batch / median step time; ratios also from all pairs / all seconds (mean-based) and from the "
          "fastest step of each side (best-step)")
    if "dpo" in kinds:
        print("  TRL DPO: " + ("reference forward in every step (--trl-live-ref)" if args.trl_live_ref
                               else "precomputed reference log-probs, like rlhfkit")
              + f"; rlhfkit --length-groups {args.length_groups or 'default'}, --shared-prompt "
              f"{'default' if args.shared_prompt is None else args.shared_prompt}")

    for kind in kinds:
        r = results[kind]
        print(f"\n{kind.upper()} loss at matching steps (same batches; {r['tokens']}):")
        print(f"  {'step':>5}  {'rlhfkit':>9}  {'TRL':>9}  {'|diff|':>8}  {'lr rlhfkit':>11}  {'lr TRL':>11}   (lr used in the step)")
        shown = sorted({1, 2, 3, *range(5, args.steps + 1, max(1, args.steps // 8)), args.steps})
        for step in shown:
            a, b = r["loss"]["rlhfkit"].get(step), r["loss"]["trl"].get(step)
            if a is None or b is None:
                continue
            print(f"  {step:>5}  {a:>9.5f}  {b:>9.5f}  {abs(a - b):>8.1e}  {r['lr']['rlhfkit'][step]:>11.3e}  "
                  f"{r['lr']['trl'][step]:>11.3e}")
        common = sorted(set(r["loss"]["rlhfkit"]) & set(r["loss"]["trl"]))
        worst = max(abs(r["loss"]["rlhfkit"][s] - r["loss"]["trl"][s]) for s in common)
        print(f"  largest |diff| over all {len(common)} steps: {worst:.1e}")


if __name__ == "__main__":
    main()
