"""Reward-model training (stage 2): learn a scalar score from people's comparisons.

    L_RM = -E[ log sigma(r(x, y_w) - r(x, y_l) - margin) ]          (Bradley-Terry, --loss bradley_terry)
    L_RM =  E[ max(0, margin - (r(x, y_w) - r(x, y_l))) ]           (--loss margin_ranking)
    L_RM = -E[ c log sigma(d) + (1 - c) log sigma(-d) ]             (a row whose label_confidence c < 1)
    K-wise rankings (B > A > C): all K(K-1)/2 pairs (InstructGPT), or the Plackett-Luce likelihood
    of the whole ranking (--ranking-loss plackett_luce).

Run it:
    rlhfkit rm --model runs/sft --data preferences.jsonl --out runs/rm
    rlhfkit rm --model tiny --data "builtin:assistant?noise=0.25"           # simulated labels

The backbone is any `AutoModelForSequenceClassification` (a causal-LM checkpoint gets a fresh
scalar head); `--heads N` trains an ensemble of N heads on one backbone, whose spread is an
uncertainty estimate. The reward is read at the last real token (rlhfkit.models.reward_model.RewardModel).
After training the rewards are normalised on a reference sample (mean 0, std 1) and the statistics
saved as reward_stats.json; held-out metrics go to eval_metrics.json: pairwise accuracy, loss,
calibration (ECE of sigma(r_c - r_r) and its reliability bins), accuracy per annotator and per rubric criterion, and the
correlation of reward with response length, the first warning sign of reward hacking.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from rlhfkit.data.adversarial import adversarial_pairs, check_edits
from rlhfkit.data.records import (
    Records,
    detect_kind,
    load_records,
    ranking_to_pairs,
    split_implicit_prompt,
    train_and_held_out,
)
from rlhfkit.data.tokenization import Example, collate, encode, render_completion, render_prompt
from rlhfkit.errors import ConfigError
from rlhfkit.math.losses import (
    bradley_terry_loss,
    l2_to_reference,
    margin_ranking_loss,
    noisy_bradley_terry_loss,
    plackett_luce_loss,
    soft_bradley_terry_loss,
)
from rlhfkit.math.stats import calibration_bins, expected_calibration_error, pearson
from rlhfkit.models.loading import load_reward_backbone
from rlhfkit.models.reward_model import RewardModel, save_reward_stats
from rlhfkit.trainers.loop import (
    Objective,
    SupervisedConfig,
    adamw,
    adapt,
    default_lr,
    fit,
    make_accelerator,
    seed_everything,
)

TINY_LR, PRETRAINED_LR = 5e-4, 1e-5


@dataclass
class RMConfig(SupervisedConfig):
    """Train a reward model on pairwise preferences or K-wise rankings."""

    out: str = "runs/rm"
    """Output folder: the reward model (HF checkpoint), reward_stats.json, eval_metrics.json, metrics.jsonl."""
    loss: Literal["bradley_terry", "margin_ranking"] = "bradley_terry"
    """Pairwise loss."""
    margin_scale: float = 1.0
    """Multiplier on a record's `margin` column (0 ignores margins)."""
    ranking_margin: float = 1.0
    """The hinge's margin for --loss margin_ranking."""
    ranking_loss: Literal["pairs", "plackett_luce"] = "pairs"
    """K-wise rankings: all their pairs, or the Plackett-Luce likelihood of the whole ranking."""
    center_rewards_coef: float = 0.0
    """Weight of (sum of a group's rewards)^2, which keeps rewards centred at 0 (Eisenstein et al. 2023)."""
    heads: int = 1
    """Ensemble size: independent scalar heads on one backbone; their spread estimates uncertainty."""
    bootstrap: bool = False
    """With --heads > 1: each head sees its own bootstrap of the comparisons (a seeded weight of 0 or 2
    per comparison and head), so the heads disagree where the data leave the answer open."""
    builtin_size: int = 2000
    """Number of preference pairs generated when --data is builtin:assistant."""
    criteria_coef: float = 0.0
    """Weight of the rubric-criterion heads' loss: one extra head per criterion in the data's `criteria`
    column, trained on the pairs where that criterion has a winner; the reward stays the overall head."""
    adversarial_edits: list[str] = field(default_factory=list)
    """Edits that help nobody, as extra training pairs (original > edited): any of repetition, flattery,
    overconfidence, length (rlhfkit.data.adversarial; worded unlike the probes that measure them)."""
    adversarial_share: float = 0.25
    """Share of the training responses that get an adversarial pair (one of --adversarial-edits, at random)."""
    adversarial_weight: float = 1.0
    """Weight of an adversarial pair's loss relative to a real comparison's."""
    label_smoothing: float = 0.0
    """Bradley-Terry label smoothing: the share of labels assumed flipped (stops pushing a pair whose
    probability has reached 1 - eps)."""
    label_noise: float = 0.0
    """The probability that an annotator answered a pair at random: hard pairwise labels are then fitted by the
    noise-aware Bradley-Terry likelihood noise/2 + (1 - noise) sigmoid(r_c - r_r) (rlhfkit.math.losses.
    noisy_bradley_terry_loss), which a wrong label moves by a bounded amount; margins are not used with it
    (soft labels still are). 0: plain Bradley-Terry."""
    head_l2: float = 0.0
    """Weight of an L2 pull of the reward head toward its initial weights, added once per optimizer step."""
    extra_data: list[str] = field(default_factory=list)
    """More comparison files trained on beside --data, e.g. comparisons of the current policy's own samples
    beside SFT's (the seeds' "diverse reward model training"); all their records train, --data alone is
    held out from; eval_metrics.json's data_mix says how many records each file gave."""
    soft_labels: bool = True
    """Train on a row's `label_confidence` (soft Bradley-Terry: the target probability that chosen is better)
    wherever it is below 1; such a row's `margin` is not used, since the export's margin (2c - 1) is the same
    evidence."""

    early_stopping: int = 0
    """Patience: stop once the held-out loss (--eval-data, or the --eval-fraction split, measured every
    --eval-every steps) has not fallen for this many evaluations in a row, and save the weights of the
    best evaluation, not the last; 0: train to the end. eval_metrics.json's early_stopping says where."""

    def validate(self) -> None:
        super().validate()
        if self.early_stopping < 0 or (self.early_stopping and self.eval_every < 1):
            raise ConfigError(f"--early-stopping {self.early_stopping} needs --eval-every >= 1 (now {self.eval_every}) "
                              f"and must be >= 0")
        if self.heads < 1:
            raise ConfigError(f"--heads must be at least 1, got {self.heads}")
        if self.criteria_coef < 0:
            raise ConfigError(f"--criteria-coef must be >= 0, got {self.criteria_coef}")
        try:
            check_edits(self.adversarial_edits)
        except ValueError as exc:
            raise ConfigError(f"--adversarial-edits: {exc}") from None
        if not 0 < self.adversarial_share <= 1 or self.adversarial_weight <= 0:
            raise ConfigError(f"--adversarial-share must be in (0, 1] and --adversarial-weight positive, got "
                              f"{self.adversarial_share} and {self.adversarial_weight}")
        if not 0 <= self.label_noise < 1:
            raise ConfigError(f"--label-noise is a probability in [0, 1), got {self.label_noise}")
        if self.label_noise and (self.label_smoothing or self.loss != "bradley_terry"):
            raise ConfigError("--label-noise is a noise model for the Bradley-Terry loss: use it without "
                              "--label-smoothing (another noise model) and with --loss bradley_terry")
        if not 0 <= self.label_smoothing < 0.5 or self.head_l2 < 0:
            raise ConfigError(f"--label-smoothing must be in [0, 0.5) and --head-l2 >= 0, got {self.label_smoothing} "
                              f"and {self.head_l2}")


@dataclass
class Group:
    """One comparison: K responses to a prompt and their order, best first."""

    responses: list[int]  # indices into the encoded response list
    ranking: list[int]  # positions in `responses`, best first
    margin: float
    annotator: str | None
    criteria: dict[str, str] | None
    weight: float = 1.0  # of its loss (adversarial pairs: --adversarial-weight)
    confidence: float = 1.0  # the row's label_confidence: P(chosen is better), soft Bradley-Terry's target
    head_weights: list[float] | None = None  # per ensemble head (--bootstrap), multiplies `weight`


def encode_groups(records: Records, tokenizer: Any, max_length: int, expand_rankings: bool,
                  margin_scale: float) -> tuple[list[Example], list[Group]]:
    """Tokenize every response once; comparisons refer to them by index."""
    examples: list[Example] = []
    groups: list[Group] = []
    for i, row in enumerate(records.rows):
        where = records.location(i)
        if "responses" in row:
            comparisons = ranking_to_pairs(row) if expand_rankings else [row]
        else:
            comparisons = [split_implicit_prompt(row)]
        for comp in comparisons:
            if "responses" in comp:
                texts, ranking = comp["responses"], list(comp["ranking"])
            else:
                texts, ranking = [comp["chosen"], comp["rejected"]], [0, 1]
            prompt_text = render_prompt(tokenizer, comp["prompt"])
            first = len(examples)
            for text in texts:
                examples.append(encode(tokenizer, prompt_text, render_completion(tokenizer, comp["prompt"], text),
                                       max_length, where))
            criteria = row.get("criteria") if "responses" not in row else None  # they name chosen / rejected
            groups.append(Group(list(range(first, first + len(texts))), ranking,
                                float(row.get("margin") or 0.0) * margin_scale, row.get("annotator"), criteria,
                                confidence=float(row.get("label_confidence", 1.0)) if "responses" not in comp else 1.0))
    return examples, groups


def group_rewards(model, groups: list[Group], examples: list[Example], pad_id: int, device) -> torch.Tensor:
    """(B, K, outputs) rewards of each group's responses (heads, then criterion heads), in one forward pass."""
    flat = [examples[j] for g in groups for j in g.responses]
    batch = collate(flat, pad_id)
    rewards = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))  # (B*K, heads)
    return rewards.float().view(len(groups), -1, rewards.shape[-1])


def comparison_loss(rewards: torch.Tensor, groups: list[Group], config: RMConfig) -> torch.Tensor:
    """Per-group loss summed over heads: (B,). rewards: (B, K, heads)."""
    ranking = torch.tensor([g.ranking for g in groups], device=rewards.device)  # (B, K)
    ordered = rewards.gather(1, ranking.unsqueeze(-1).expand_as(rewards))  # (B, K, heads), best first
    if ordered.shape[1] > 2:
        loss = torch.stack([plackett_luce_loss(ordered[..., h], torch.arange(ordered.shape[1], device=rewards.device)
                                               .expand_as(ranking)) for h in range(rewards.shape[-1])], -1)
    else:
        chosen, rejected = ordered[:, 0], ordered[:, 1]  # (B, heads)
        if config.loss == "bradley_terry":
            if config.label_noise:
                loss = noisy_bradley_terry_loss(chosen, rejected, config.label_noise)
            else:
                margin = torch.tensor([g.margin for g in groups], device=rewards.device).unsqueeze(-1)
                loss = bradley_terry_loss(chosen, rejected, margin.expand_as(chosen), config.label_smoothing)
            if config.soft_labels and any(g.confidence < 1 for g in groups):
                # a soft row learns its label_confidence and not its margin (the same evidence)
                c = torch.tensor([g.confidence for g in groups], device=rewards.device).unsqueeze(-1)  # (B, 1)
                target = c * (1 - config.label_smoothing) + (1 - c) * config.label_smoothing
                soft = soft_bradley_terry_loss(chosen, rejected, target.expand_as(chosen))
                loss = torch.where(c < 1, soft, loss)
        else:
            loss = margin_ranking_loss(chosen, rejected, config.ranking_margin)
    if any(g.head_weights for g in groups):
        loss = loss * torch.tensor([g.head_weights or [1.0] * loss.shape[-1] for g in groups],
                                   device=loss.device, dtype=loss.dtype)  # (B, heads)
    loss = loss.sum(-1)
    if config.center_rewards_coef:
        loss = loss + config.center_rewards_coef * rewards.sum(1).pow(2).mean(-1)
    if any(g.weight != 1.0 for g in groups):
        loss = loss * torch.tensor([g.weight for g in groups], device=loss.device, dtype=loss.dtype)
    return loss


def add_adversarial(records: Records, examples: list[Example], groups: list[Group], tokenizer: Any,
                    config: RMConfig) -> int:
    """Append --adversarial-edits pairs of the training responses to `examples` and `groups`; return how many."""
    rows = adversarial_pairs([r for r in records.rows if "responses" not in r], config.adversarial_edits,
                             config.adversarial_share, config.seed)
    where = [f"adversarial {row['adversarial']} edit {i + 1}" for i, row in enumerate(rows)]
    extra_examples, extra_groups = encode_groups(Records(rows, where, "adversarial edits"), tokenizer,
                                                 config.max_length, True, 0.0)
    for g in extra_groups:
        g.responses = [j + len(examples) for j in g.responses]
        g.weight = config.adversarial_weight
    examples += extra_examples
    groups += extra_groups
    return len(rows)


def bootstrap_weights(groups: list[Group], heads: int, seed: int) -> None:
    """Double-or-nothing bootstrap (Owen and Eckles 2012): head h weighs each comparison 0 or 2 with a
    seeded fair coin, so every head trains on about half the data, each on a different half."""
    rng = random.Random(seed)
    for g in groups:
        g.head_weights = [2.0 * rng.randrange(2) for _ in range(heads)]


def criterion_names(records: Records) -> list[str]:
    """Sorted names of the rubric criteria that pick a winner in at least one pairwise record."""
    return sorted({c for row in records.rows if "responses" not in row
                   for c, w in (row.get("criteria") or {}).items() if w in ("chosen", "rejected")})


def criterion_signs(groups: list[Group], criteria: list[str], device) -> torch.Tensor:
    """(B, C): +1 where the criterion's winner is the chosen response, -1 the rejected one, 0 no winner."""
    return torch.tensor([[{"chosen": 1.0, "rejected": -1.0}.get((g.criteria or {}).get(c), 0.0) for c in criteria]
                         for g in groups], device=device)


def criteria_loss(criterion_rewards: torch.Tensor, groups: list[Group], criteria: list[str]) -> torch.Tensor:
    """(B,) Bradley-Terry loss of each criterion head, summed over the criteria that have a winner.

    criterion_rewards: (B, 2, C) for pairs stored as [chosen, rejected]. A criterion won by "chosen"
    contributes -log sigma(r_c(chosen) - r_c(rejected)), one won by "rejected" the mirror image, a tie
    nothing.
    """
    sign = criterion_signs(groups, criteria, criterion_rewards.device)  # (B, C)
    diff = criterion_rewards[:, 0] - criterion_rewards[:, 1]  # (B, C)
    losses = bradley_terry_loss(sign * diff, torch.zeros_like(diff))
    return (losses * (sign != 0)).sum(-1)


def pairwise_correct(rewards: torch.Tensor, groups: list[Group]) -> torch.Tensor:
    """(B,) share of the group's ordered pairs that the mean-over-heads reward gets right."""
    mean = rewards.mean(-1)  # (B, K)
    out = []
    for row, g in zip(mean, groups):
        pairs = [(row[a] > row[b]).float() for i, a in enumerate(g.ranking) for b in g.ranking[i + 1:]]
        out.append(torch.stack(pairs).mean())
    return torch.stack(out)


@torch.no_grad()
def held_out_metrics(model, groups: list[Group], examples: list[Example], config: RMConfig, pad_id: int,
                     device, criteria: list[str] = ()) -> tuple[dict[str, Any], list[float]]:
    """Metrics on held-out comparisons, and every raw (mean-head) reward for normalisation."""
    losses, correct, probs, all_rewards, lengths = [], [], [], [], []
    by_annotator: dict[str, list[float]] = {}
    by_criterion: dict[str, list[float]] = {}
    by_criterion_head: dict[str, list[float]] = {}
    for s in range(0, len(groups), config.batch_size):
        chunk = groups[s:s + config.batch_size]
        outputs = group_rewards(model, chunk, examples, pad_id, device)
        rewards = outputs[..., :config.heads]
        if criteria and outputs.shape[1] == 2:  # pairs: does each criterion head pick that criterion's winner?
            sign = criterion_signs(chunk, criteria, outputs.device)  # (B, C)
            agrees = (outputs[:, 0, config.heads:] > outputs[:, 1, config.heads:]) == (sign > 0)
            for j, criterion in enumerate(criteria):
                if (sign[:, j] != 0).any():
                    by_criterion_head.setdefault(criterion, []).extend(agrees[sign[:, j] != 0, j].float().tolist())
        losses += comparison_loss(rewards, chunk, config).tolist()
        right = pairwise_correct(rewards, chunk).tolist()
        correct += right
        mean = rewards.mean(-1)
        for g, row, ok in zip(chunk, mean, right):
            best, second = g.ranking[0], g.ranking[1]
            probs.append(torch.sigmoid(row[best] - row[second]).item())
            for j, r in zip(g.responses, row.tolist()):
                all_rewards.append(r)
                lengths.append(examples[j].completion_tokens)
            if g.annotator:
                by_annotator.setdefault(g.annotator, []).append(ok)
            for criterion, winner in (g.criteria or {}).items():
                if winner in ("chosen", "rejected"):
                    agrees = (row[best] > row[second]).item() == (winner == "chosen")
                    by_criterion.setdefault(criterion, []).append(float(agrees))
    metrics: dict[str, Any] = {
        "accuracy": sum(correct) / len(correct),
        "loss": sum(losses) / len(losses),
        "ece": expected_calibration_error(probs),
        "calibration_bins": calibration_bins(probs),
        "reward_length_corr": pearson(all_rewards, [float(n) for n in lengths]),
        "pairs": len(groups),
    }
    if by_annotator:
        metrics["accuracy_by_annotator"] = {k: sum(v) / len(v) for k, v in sorted(by_annotator.items())}
    if by_criterion:
        metrics["accuracy_by_criterion"] = {k: sum(v) / len(v) for k, v in sorted(by_criterion.items())}
    if by_criterion_head:
        metrics["criterion_head_accuracy"] = {k: sum(v) / len(v) for k, v in sorted(by_criterion_head.items())}
    return metrics, all_rewards


class EarlyStopping:
    """`Objective.stop` for --early-stopping: watches each evaluation's held-out loss, keeps a copy of
    the best evaluation's weights, and ends training once `patience` evaluations in a row have not
    beaten it (or at the last step), with the best weights put back into the model."""

    def __init__(self, patience: int, model):
        self.patience, self.model = patience, model
        self.best, self.best_step, self.waited, self.stopped_step = math.inf, 0, 0, 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def __call__(self, _wrapped, record: dict[str, Any], last: bool) -> bool:
        if "eval_loss" in record:
            if record["eval_loss"] < self.best:
                self.best, self.best_step, self.waited = record["eval_loss"], record["step"], 0
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            else:
                self.waited += 1
        if not (last or self.waited >= self.patience):
            return False
        self.stopped_step = record["step"]
        if self.best_state is not None and self.best_step != record["step"]:
            self.model.load_state_dict(self.best_state)
        return True

    def summary(self) -> dict[str, Any]:
        return {"patience": self.patience, "best_step": self.best_step, "best_eval_loss": self.best,
                "stopped_step": self.stopped_step}


def train_rm(config: RMConfig, on_step=None) -> Path:
    """Train a reward model; return the output folder (a HF sequence-classification checkpoint)."""
    out = Path(config.out)
    acc = make_accelerator(config)
    seed_everything(config.seed)

    # 1) data: validated, then tokenized; every comparison refers to its responses by index
    records, held = train_and_held_out(config.data, config.eval_data, ("preferences", "rankings"),
                                       builtin_size=config.builtin_size, eval_fraction=config.eval_fraction,
                                       seed=config.seed)
    mix = {str(config.data): len(records)}
    for extra in config.extra_data:
        more = load_records(extra, detect_kind(extra, ("preferences", "rankings")), seed=config.seed)
        records = Records(records.rows + more.rows, records.where + more.where, records.source)
        mix[extra] = len(more)
    criteria = criterion_names(records) if config.criteria_coef > 0 else []
    if config.criteria_coef > 0 and not criteria:
        raise ConfigError(f"--criteria-coef {config.criteria_coef} needs a 'criteria' column naming a winner "
                          f"(chosen or rejected) per rubric criterion; no pairwise record of {config.data} has one")
    classifier, tokenizer = load_reward_backbone(config.model, dtype="fp32", seed=config.seed,
                                                 num_labels=config.heads + len(criteria),
                                                 load_in_4bit=config.load_in_4bit)
    labels = [f"reward_{h}" for h in range(config.heads)] + [f"criterion:{c}" for c in criteria]
    classifier.config.id2label = dict(enumerate(labels))
    classifier.config.label2id = {name: i for i, name in enumerate(labels)}
    expand = config.ranking_loss == "pairs"
    examples, groups = encode_groups(records, tokenizer, config.max_length, expand, config.margin_scale)
    held_examples, held_groups = encode_groups(held, tokenizer, config.max_length, expand, 0.0) if held else ([], [])
    if not expand and len({len(g.responses) for g in groups}) > 1:
        raise ConfigError("--ranking-loss plackett_luce needs rankings of one size K; use --ranking-loss pairs")
    if config.adversarial_edits:
        added = add_adversarial(records, examples, groups, tokenizer, config)
        if acc.is_main_process:
            print(f"rm: {added} adversarial pairs ({', '.join(config.adversarial_edits)}) beside {len(records)} "
                  f"records, weight {config.adversarial_weight}")

    if config.bootstrap and config.heads > 1:
        bootstrap_weights(groups, config.heads, config.seed)

    # 2) model and optimizer (--lora-r: adapters on the backbone, the head trained in full and saved with them)
    classifier, saved = adapt(config, classifier, "classifier", acc)
    model = RewardModel(classifier)
    lr = default_lr(config, model, TINY_LR, PRETRAINED_LR)
    optimizer = adamw(model.parameters(), lr, config.weight_decay)
    model, optimizer = acc.prepare(model, optimizer)
    pad_id = tokenizer.pad_token_id
    head = acc.unwrap_model(model).head_parameters()
    initial_head = [p.detach().clone() for p in head]

    def loss(model, ids: list[int]):
        chunk = [groups[i] for i in ids]
        outputs = group_rewards(model, chunk, examples, pad_id, acc.device)  # (B, K, heads + criteria)
        rewards = outputs[..., :config.heads]
        total = comparison_loss(rewards, chunk, config).sum()
        if criteria:
            total = total + config.criteria_coef * criteria_loss(outputs[..., config.heads:], chunk, criteria).sum()
        if config.head_l2 > 0:  # x len(ids): fit divides by the global batch, so each step adds it once
            total = total + config.head_l2 * l2_to_reference(head, initial_head) * len(ids)
        return total, {"accuracy": pairwise_correct(rewards.detach(), chunk).sum()}

    def evaluate(model) -> dict[str, float]:
        metrics, _ = held_out_metrics(model, held_groups, held_examples, config, pad_id, acc.device, criteria)
        return {k: v for k, v in metrics.items() if isinstance(v, float)}

    if config.early_stopping and not held_groups:
        raise ConfigError("--early-stopping needs held-out comparisons: --eval-data, or --eval-fraction above 0")
    stopper = EarlyStopping(config.early_stopping, acc.unwrap_model(model)) if config.early_stopping else None
    objective = Objective(lengths=[sum(len(examples[j]) for j in g.responses) for g in groups],
                          weight=len, loss=loss, evaluate=evaluate if held_groups else None, unit="comparisons",
                          stop=stopper)

    # 3) the loop, then normalisation statistics and held-out metrics
    record = fit(config, acc, model, tokenizer, optimizer, objective, "rm", lr, on_step,
                 inner=lambda m: saved)  # checkpoints hold the HF classifier (or its adapter), not the wrapper
    if acc.is_main_process:
        model.eval()
        reference = held_groups or groups[: max(1, min(len(groups), 500))]
        ref_examples = held_examples if held_groups else examples
        metrics, rewards = held_out_metrics(model, reference, ref_examples, config, pad_id, acc.device, criteria)
        mean = sum(rewards) / len(rewards)
        std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / max(1, len(rewards) - 1)) or 1.0
        save_reward_stats(out, mean, std, config.heads, "held-out responses" if held_groups else "training responses",
                          criteria)
        metrics["data_mix"] = mix
        if stopper is not None:
            metrics["early_stopping"] = stopper.summary()
        (out / "eval_metrics.json").write_text(json.dumps(metrics, indent=2))
        print(f"rm done: {record.get('step', 0)} steps; held-out accuracy {metrics['accuracy']:.3f}, "
              f"ECE {metrics['ece']:.3f}, reward-length correlation {metrics['reward_length_corr']:+.2f}; "
              f"saved to {out}")
    return out
