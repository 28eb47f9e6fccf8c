"""Online-RL throughput of rlhfkit's `train_ppo` against TRL's `GRPOTrainer`, side by side in one process.

What it measures: completed RL steps per second (sample -> score -> reference/old log-probs -> update),
printed as episodes/s (episodes = responses per step) and as generated tokens/s, for
  - rlhfkit GRPO: `train_ppo(PPOConfig(advantage="grpo"))`
  - rlhfkit PPO:  `train_ppo(PPOConfig(advantage="gae"))`  (value head, GAE, KL in the reward)
  - TRL GRPO:     `trl.GRPOTrainer`
and the ratios rlhfkit / TRL (above 1: rlhfkit is faster). Response lengths differ between the sides
(sampling, and the policies drift apart after the first update), so tokens/s is the per-token view of
the same runs; the mean response length and the share ending in EOS are printed next to it.

Both sides get the same work:
  1) model: one SFT checkpoint folder (--model; default: `train_sft` of the tiny Llama on
     builtin:assistant for --sft-steps steps, cached under ~/.cache/rlhfkit/bench/: 300 steps give
     responses of about 28 tokens, 97% ending in EOS within 48), loaded in fp32 by both, policy and a
     frozen reference copy on both sides;
  2) prompts: `load_records("builtin:assistant", "prompts", split="train", builtin_size=N, seed)`.
     rlhfkit renders them with `render_prompt` (plain strings: the text as is; the tiny tokenizer has
     no chat template), and TRL gets plain-string prompts too, which it tokenizes as is (no chat
     template); the script checks both give the same prompt token ids. For GRPO, TRL gets the prompts in
     the order rlhfkit draws them (`step_prompts`) with `shuffle_dataset=False`, so step k of both
     samples from the same prompts. PPO (gae) samples one response per prompt, so it takes
     prompts-per-step x group-size distinct prompts per step, to keep the episodes per step equal;
  3) sampling: group size (TRL `num_generations`) G, P prompts per step, E = P x G episodes per step
     (TRL `generation_batch_size`), --max-new-tokens (TRL `max_completion_length`), temperature 1,
     no top-k / top-p; each side's own sampler (rlhfkit: its KV-cache sampler; TRL: `model.generate`);
  4) reward: the gold rubric `rlhfkit.tasks.assistant.gold_reward(prompt, completion)` on both sides
     (rlhfkit `reward="gold"`; TRL a reward function calling it), no EOS or length penalty
     (rlhfkit `missing_eos_penalty=None`);
  5) update: --ppo-epochs passes over each step's E episodes in minibatches of --batch-size
     (rlhfkit `ppo_epochs`, `minibatch_size`; TRL `num_iterations`, `per_device_train_batch_size`,
     `steps_per_generation = E / batch-size`), so both take ppo-epochs x E / batch-size optimizer steps
     per RL step. GRPO on both sides: clipped ratio (eps 0.2) on group-normalised advantages
     (r - mean) / (std + 1e-4), token mean over the minibatch (TRL `loss_type="bnpo"`), no advantage
     whitening (rlhfkit `whiten_advantages=False`), KL as beta x k3 added to the loss (rlhfkit
     `kl_in_reward=False`, TRL's only form), beta = --beta on both;
  6) KL and ratio work, once per RL step over every episode (teacher-forced, no grad): both sides run
     the frozen reference (rlhfkit always, also for the logged KL; TRL when beta > 0, so --beta 0 would
     let TRL skip it and not rlhfkit). The rollout-time log-probs of the PPO ratio: TRL runs a policy
     forward for them (it does whenever more than one optimizer step follows a generation); rlhfkit grpo
     takes them from its sampler (no forward, since f9f6eb9) and rlhfkit gae runs the policy forward
     for its values anyway;
  7) optimizer: AdamW, no weight decay, grad-norm clip 1.0, the same lr, no warmup, cosine to 10%;
  8) fp32, both on the CPU (or both on the GPU where there is one), TRL's gradient checkpointing and bf16 off, dropout off; no eval, no checkpoint in the
     timed steps; both log once per RL step (rlhfkit `log_every=1`, TRL `logging_steps` = updates per step).
Timing: wall-clock stamps at the end of every RL step (rlhfkit's `on_step` hook; for TRL
`TrainerCallback.on_step_end` on every (updates-per-step)-th optimizer step). The first --warmup steps
and the last step (rlhfkit writes its checkpoint and final model inside it) are left out. Headline:
episodes/s = E / median step time; also E x steps / seconds (mean) and generated tokens/s = generated
tokens (up to and including EOS) in the timed steps / their seconds. A per-phase split (generate,
score, no-grad log-prob forwards, update and the rest) is taken by wrapping each side's functions with
`time.perf_counter`.

Run it:
    .venv/bin/pip install -r bench/requirements.txt              # trl
    .venv/bin/python bench/online_rl_vs_trl.py                   # 3 runs of 12 steps, about 3 minutes
    .venv/bin/python bench/online_rl_vs_trl.py --threads 1 --steps 16 --repeats 2 --json rl.json
    .venv/bin/python bench/online_rl_vs_trl.py --model runs/sft --only grpo trl
The first run without --model also trains the SFT model (300 steps: 13 minutes on 2 busy cores).

Leaves out on purpose: start-up (model loading, TRL's dataset preparation, the one-time SFT run), GPUs,
vLLM, mixed precision, multiple processes. TRL 1.16 has no PPO trainer (not in trl.experimental either),
so rlhfkit's gae run is compared with TRL's GRPO: the same sampling, scoring and reference work plus a
value head, GAE and whitening on rlhfkit's side, which is more work, not less.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "TQDM_DISABLE"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' gradient_checkpointing renames

LR, MIN_LR_RATIO, MAX_GRAD_NORM, CLIP = 3e-5, 0.1, 1.0, 0.2  # rlhfkit's ppo lr for the tiny model
SIDES = ("rlhfkit grpo", "rlhfkit gae", "TRL grpo")
PHASES = ("generate", "score", "no-grad forwards")


@dataclass
class Run:
    """One training run: a stamp at the end of each RL step, tokens and score per step, phase intervals."""

    name: str
    stamps: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)  # generated tokens of step k+1
    finished: list[float] = field(default_factory=list)  # share of responses that ended in EOS
    scores: list[float] = field(default_factory=list)  # mean gold score of step k+1
    prompts: list[list[str]] = field(default_factory=list)  # the prompts scored in step k+1
    phases: list[tuple[str, float, float]] = field(default_factory=list)

    def timed(self, warmup: int) -> range:
        """Indices k of the timed steps (step k+1 runs from stamps[k-1] to stamps[k])."""
        return range(warmup, len(self.stamps) - 1)

    def summary(self, episodes: int, warmup: int) -> dict:
        ks = self.timed(warmup)
        seconds = [self.stamps[k] - self.stamps[k - 1] for k in ks]
        start, end = self.stamps[warmup - 1], self.stamps[ks[-1]]
        phase = {name: 0.0 for name in PHASES}
        for name, t0, t1 in self.phases:
            if t0 >= start and t1 <= end:
                phase[name] += t1 - t0
        phase["update and the rest"] = sum(seconds) - sum(phase.values())
        tokens = sum(self.tokens[k] for k in ks)
        return {"episodes_per_s": episodes / statistics.median(seconds),
                "episodes_per_s_mean": episodes * len(seconds) / sum(seconds),
                "tokens_per_s": tokens / sum(seconds),
                "mean_response_tokens": tokens / (episodes * len(seconds)),
                "eos_share": statistics.mean(self.finished[k] for k in ks),
                "median_step_s": statistics.median(seconds), "timed_steps": len(seconds),
                "phase_seconds_per_step": {k: v / len(seconds) for k, v in phase.items()},
                "step_seconds": seconds, "scores": self.scores}


def timed_call(run: Run, phase: str, fn, after=None):
    """fn wrapped so that each call appends (phase, start, end) to run.phases; after(result) runs outside it."""
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        run.phases.append((phase, t0, time.perf_counter()))
        if after is not None:
            after(result)
        return result
    return wrapper


# ---------------------------------------------------------------------------------------------- setup

def sft_checkpoint(args) -> Path:
    """--model, or a cached tiny SFT checkpoint trained for --sft-steps steps."""
    if args.model:
        return Path(args.model)
    from rlhfkit.trainers.sft import SFTConfig, train_sft

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rlhfkit" / "bench"
    out = cache / f"sft-tiny-{args.sft_steps}steps-seed{args.seed}"
    if not (out / "config.json").exists():
        print(f"training the SFT model once ({args.sft_steps} steps) into {out} ...", flush=True)
        train_sft(SFTConfig(out=str(out), max_steps=args.sft_steps, seed=args.seed, progress=False, resume=False,
                            save_every=10**9, log_every=50))
    return out


def prompt_pool(args) -> list[str]:
    from rlhfkit.data.records import load_records

    records = load_records("builtin:assistant", "prompts", split="train", builtin_size=args.builtin_size,
                           seed=args.seed)
    return [row["prompt"] for row in records.rows]


def check_prompt_tokens(model_dir: Path, prompts: list[str]) -> str:
    """How many prompts TRL would tokenize differently from rlhfkit's sampler."""
    from transformers import AutoTokenizer

    from rlhfkit.data.tokenization import boundary_tokens, render_prompt
    from rlhfkit.models.loading import load_tokenizer

    ours_tok, trl_tok = load_tokenizer(str(model_dir)), AutoTokenizer.from_pretrained(model_dir)
    start, _ = boundary_tokens(ours_tok)
    ours = [start + ours_tok(render_prompt(ours_tok, p), add_special_tokens=False)["input_ids"] for p in prompts]
    theirs = trl_tok(text=prompts)["input_ids"]  # what GRPOTrainer._tokenize_prompts does for plain strings
    template = "no chat template" if not getattr(trl_tok, "chat_template", None) else "has a chat template"
    return f"{sum(a != b for a, b in zip(ours, theirs))} of {len(prompts)} prompts tokenized differently ({template})"


# ---------------------------------------------------------------------------------------------- rlhfkit

def run_rlhfkit(advantage: str, model_dir: Path, workdir: Path, args) -> Run:
    import rlhfkit.trainers.ppo as ppo

    run = Run(f"rlhfkit {advantage}")
    group = args.group_size if advantage == "grpo" else 1
    prompts_per_step = args.prompts_per_step * args.group_size // group  # same episodes per step

    def on_sample(out) -> None:
        run.tokens.append(int(out.mask.sum()))
        run.finished.append(float(out.finished.float().mean()))

    def on_step(step: int, record: dict) -> None:
        run.stamps.append(time.perf_counter())
        run.scores.append(record["score"])

    def load_reward(spec):
        judge = timed_call(run, "score", original["judge"](spec))

        def scored(prompts, completions):
            run.prompts.append(list(prompts))
            return judge(prompts, completions)
        return scored

    # the trainer's own names for the phases: sampling, the no-grad (reference) forwards, the judge
    original = {"sample": ppo.sample, "forward": ppo.rollout_forward, "judge": ppo.load_reward}
    ppo.sample = timed_call(run, "generate", original["sample"], on_sample)
    ppo.rollout_forward = timed_call(run, "no-grad forwards", original["forward"])
    ppo.load_reward = load_reward
    try:
        with tempfile.TemporaryDirectory(dir=workdir) as out:
            config = ppo.PPOConfig(
                model=str(model_dir), data="builtin:assistant", builtin_size=args.builtin_size, out=out,
                reward="gold", advantage=advantage, group_size=args.group_size, prompts_per_step=prompts_per_step,
                max_new_tokens=args.max_new_tokens, temperature=1.0, kl_coef=args.beta,
                kl_in_reward=advantage == "gae", ppo_epochs=args.ppo_epochs, minibatch_size=args.batch_size,
                clip_range=CLIP, missing_eos_penalty=None, length_penalty=0.0, whiten_advantages=advantage == "gae",
                max_steps=args.steps, lr=LR, warmup_ratio=0.0, min_lr_ratio=MIN_LR_RATIO,
                max_grad_norm=MAX_GRAD_NORM, weight_decay=0.0, seed=args.seed, dtype="fp32", log_every=1,
                save_every=10**9, resume=False, progress=False,
                **({} if args.shared_prompt is None else {"shared_prompt": args.shared_prompt}))
            ppo.train_ppo(config, on_step=on_step)
    finally:
        ppo.sample, ppo.rollout_forward, ppo.load_reward = original["sample"], original["forward"], original["judge"]
    return run


# ---------------------------------------------------------------------------------------------- TRL

def run_trl(model_dir: Path, workdir: Path, prompts_in_order: list[str], args) -> Run:
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rlhfkit.tasks.assistant import gold_reward

    run = Run("TRL grpo")
    episodes = args.prompts_per_step * args.group_size
    updates_per_step = args.ppo_epochs * episodes // args.batch_size
    eos = None

    def gold(prompts, completions, completion_ids, **kwargs):
        scores = [gold_reward(p, c) for p, c in zip(prompts, completions)]
        run.tokens.append(sum(len(ids) for ids in completion_ids))
        run.finished.append(sum(bool(ids) and ids[-1] == eos for ids in completion_ids) / len(completion_ids))
        run.scores.append(sum(scores) / len(scores))
        run.prompts.append(list(prompts))
        return scores

    class Stamp(TrainerCallback):
        def on_step_end(self, targs, state, control, **kwargs):
            if state.global_step % updates_per_step == 0:
                run.stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory(dir=workdir) as out:
        config = GRPOConfig(
            output_dir=out, per_device_train_batch_size=args.batch_size, gradient_accumulation_steps=1,
            steps_per_generation=episodes // args.batch_size, num_generations=args.group_size,
            num_iterations=args.ppo_epochs, max_completion_length=args.max_new_tokens, temperature=1.0, top_p=1.0,
            top_k=0, beta=args.beta, epsilon=CLIP, loss_type="bnpo", scale_rewards="group",
            shuffle_dataset=False, max_steps=args.steps * updates_per_step, learning_rate=LR,
            lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": MIN_LR_RATIO},
            warmup_steps=0, weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8,
            optim="adamw_torch", max_grad_norm=MAX_GRAD_NORM, gradient_checkpointing=False, bf16=False, fp16=False,
            use_cpu=not torch.cuda.is_available(), seed=args.seed, data_seed=args.seed, disable_dropout=True,
            model_init_kwargs={"dtype": "float32"}, dataloader_num_workers=0, report_to="none",
            logging_steps=updates_per_step, save_strategy="no", eval_strategy="no", disable_tqdm=True,
            log_completions=False)
        trainer = GRPOTrainer(model=str(model_dir), reward_funcs=gold, args=config,
                              train_dataset=Dataset.from_list([{"prompt": p} for p in prompts_in_order]),
                              callbacks=[Stamp()])
        trainer.remove_callback(PrinterCallback)
        eos = trainer.processing_class.eos_token_id

        no_grad_forward = trainer._get_per_token_logps_and_entropies

        def logps(*a, **kw):
            if torch.is_grad_enabled():
                return no_grad_forward(*a, **kw)
            return timed_call(run, "no-grad forwards", no_grad_forward)(*a, **kw)

        trainer._generate = timed_call(run, "generate", trainer._generate)
        trainer._calculate_rewards = timed_call(run, "score", trainer._calculate_rewards)
        trainer._get_per_token_logps_and_entropies = logps
        trainer.train()
    return run


# ---------------------------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="SFT checkpoint folder (default: train one, cached)")
    parser.add_argument("--sft-steps", type=int, default=300, help="steps of the default SFT model")
    parser.add_argument("--steps", type=int, default=12, help="RL steps (sample, score, update) per run")
    parser.add_argument("--warmup", type=int, default=2, help="first RL steps left out of the timing (>= 1)")
    parser.add_argument("--prompts-per-step", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=4, help="responses per prompt (TRL num_generations)")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="longest response (TRL max_completion_length)")
    parser.add_argument("--ppo-epochs", type=int, default=2, help="passes per batch (TRL num_iterations)")
    parser.add_argument("--shared-prompt", action=argparse.BooleanOptionalAction, default=None,
                        help="rlhfkit grpo's --shared-prompt (default: rlhfkit's own default)")
    parser.add_argument("--batch-size", type=int, default=16, help="episodes per optimizer step")
    parser.add_argument("--beta", type=float, default=0.05, help="KL coefficient on both sides")
    parser.add_argument("--builtin-size", type=int, default=512, help="prompts in the pool")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side, rotating which goes first")
    parser.add_argument("--only", choices=["grpo", "gae", "trl"], nargs="+", help="run some of the three sides")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch threads for every side (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args()
    episodes = args.prompts_per_step * args.group_size
    if args.warmup < 1 or args.steps < args.warmup + 2:
        parser.error("need --warmup >= 1 and --steps >= --warmup + 2")
    if episodes % args.batch_size:
        parser.error(f"--batch-size must divide prompts-per-step x group-size = {episodes} (TRL needs whole steps)")

    import transformers

    from rlhfkit.trainers.ppo import step_prompts

    try:
        import trl
        trl_version = trl.__version__
    except ImportError as error:  # rlhfkit's own sides still run; the TRL side needs it
        if not args.only or "trl" in args.only:
            parser.error(f"TRL does not import ({error}); pip install -r bench/requirements.txt, or --only grpo gae")
        trl_version = "not installed"

    if args.threads:
        torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    chosen = {"grpo": "rlhfkit grpo", "gae": "rlhfkit gae", "trl": "TRL grpo"}
    sides = [chosen[s] for s in args.only] if args.only else list(SIDES)
    model_dir = sft_checkpoint(args)
    pool = prompt_pool(args)
    # the prompts rlhfkit's grpo run draws, step after step, in its order: TRL reads them sequentially
    in_order = [pool[i] for step in range(args.steps) for i in step_prompts(len(pool), args.prompts_per_step,
                                                                           step, args.seed)]
    results: dict = {"model": str(model_dir), "steps": args.steps, "warmup": args.warmup, "episodes_per_step": episodes,
                     "prompts_per_step": args.prompts_per_step, "group_size": args.group_size,
                     "max_new_tokens": args.max_new_tokens, "ppo_epochs": args.ppo_epochs,
                     "batch_size": args.batch_size, "beta": args.beta, "repeats": args.repeats,
                     "prompt_tokens": check_prompt_tokens(model_dir, pool),
                     "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                                  "trl": trl_version},
                     "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU",
                     "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads",
                     "load_average_1min": [os.getloadavg()[0]]}
    runs: dict[str, list[Run]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("HF_DATASETS_CACHE", str(Path(tmp) / "datasets-cache"))
        for r in range(args.repeats):  # rotate who goes first, so drift in machine load hits every side
            for side in sides[r % len(sides):] + sides[:r % len(sides)]:
                print(f"running {side} ({r + 1}/{args.repeats}) ...", flush=True)
                if side == "TRL grpo":
                    runs[side].append(run_trl(model_dir, Path(tmp), in_order, args))
                else:
                    runs[side].append(run_rlhfkit(side.split()[1], model_dir, Path(tmp), args))
                results["load_average_1min"].append(os.getloadavg()[0])
    for side in sides:
        summaries = [run.summary(episodes, args.warmup) for run in runs[side]]
        results[side] = pooled(summaries, episodes)
    if "TRL grpo" in sides and "rlhfkit grpo" in sides:
        ours, theirs = runs["rlhfkit grpo"][0].prompts, runs["TRL grpo"][0].prompts
        same = sum(a == b for a, b in zip(ours, theirs))
        results["same_prompts"] = f"grpo: both sides scored the same prompts in {same} of {len(ours)} steps"
    if "TRL grpo" in sides:
        results["ratios"] = {side: {key: results[side][key] / results["TRL grpo"][key]
                                    for key in ("episodes_per_s", "episodes_per_s_mean", "tokens_per_s")}
                             for side in sides if side != "TRL grpo"}
    report(results, sides, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")


def pooled(summaries: list[dict], episodes: int) -> dict:
    """One side's repeats together: medians over all timed steps, sums over all seconds."""
    seconds = [s for summary in summaries for s in summary["step_seconds"]]
    total = sum(seconds)
    n = len(summaries)
    tokens = sum(s["tokens_per_s"] * sum(s["step_seconds"]) for s in summaries)
    phases = {k: sum(s["phase_seconds_per_step"][k] * s["timed_steps"] for s in summaries) / len(seconds)
              for k in summaries[0]["phase_seconds_per_step"]}
    return {"episodes_per_s": episodes / statistics.median(seconds), "episodes_per_s_mean": episodes * len(seconds) / total,
            "tokens_per_s": tokens / total, "mean_response_tokens": tokens / (episodes * len(seconds)),
            "eos_share": sum(s["eos_share"] for s in summaries) / n, "median_step_s": statistics.median(seconds),
            "timed_steps": len(seconds), "phase_seconds_per_step": phases, "step_seconds": seconds,
            "scores": [s["scores"] for s in summaries]}


def report(results: dict, sides: list[str], args) -> None:
    v = results["versions"]
    load = results["load_average_1min"]
    print(f"\nonline RL, rlhfkit vs TRL {v['trl']} (transformers {v['transformers']}, torch {v['torch']}): "
          f"{results['model']}, fp32 {results['device']}, {results['machine']}")
    print(f"  {args.prompts_per_step} prompts x {args.group_size} = {results['episodes_per_step']} episodes per RL "
          f"step, <= {args.max_new_tokens} new tokens, temperature 1, {args.ppo_epochs} epochs x "
          f"{results['episodes_per_step'] // args.batch_size} minibatches of {args.batch_size}, beta {args.beta}; "
          f"{args.steps} steps x {args.repeats} run(s) per side, steps {args.warmup + 1}..{args.steps - 1} timed")
    print(f"  1-min load average: {load[0]:.1f} before, " + ", ".join(f"{x:.1f}" for x in load[1:]) + " after each run;"
          f" prompts: {results['prompt_tokens']}")
    print(f"  {'':<13}{'episodes/s':>11}{'(mean)':>8}{'tokens/s':>10}{'resp. len':>10}{'EOS':>6}   "
          f"seconds per step: " + " / ".join((*PHASES, "update and the rest")))
    for side in sides:
        r = results[side]
        split = " / ".join(f"{x:.2f}" for x in r["phase_seconds_per_step"].values())
        print(f"  {side:<13}{r['episodes_per_s']:>11.2f}{r['episodes_per_s_mean']:>8.2f}{r['tokens_per_s']:>10.0f}"
              f"{r['mean_response_tokens']:>10.1f}{r['eos_share']:>6.0%}   {split}  (median step "
              f"{r['median_step_s']:.2f} s)")
    for side, ratio in results.get("ratios", {}).items():
        print(f"  {side} / TRL grpo: episodes/s {ratio['episodes_per_s']:.2f}x (median step), "
              f"{ratio['episodes_per_s_mean']:.2f}x (mean); tokens/s {ratio['tokens_per_s']:.2f}x")
    print("  episodes/s = episodes per step / median step time; (mean) = all episodes / all seconds; tokens/s = "
          "generated tokens / all seconds; EOS = share of responses that ended in EOS")
    if "same_prompts" in results:
        print(f"  {results['same_prompts']}")
    for side in sides:
        scores = results[side]["scores"][0]
        print(f"  mean gold score per step, {side}: " + " ".join(f"{s:.2f}" for s in scores))


if __name__ == "__main__":
    main()
