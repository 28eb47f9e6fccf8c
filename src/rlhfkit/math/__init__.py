"""Pure math: tensors (or plain numbers) in, tensors out. No models, no I/O, no config.

    ops      masked reductions, whitening, per-token log-probs and entropy, KL estimators, advantage
             estimators (GAE, GRPO, RLOO), KL controllers, the per-token reward of online RL, the exact
             KL of two categorical distributions
    losses   reward-model losses (Bradley-Terry, margin ranking, Plackett-Luce), DPO and its
             variants, the PPO policy and value losses and the assembled online-RL loss
    stats    statistics of evaluation: win-rate with its 95% interval, calibration (ECE), Pearson
             correlation, distinct-n
    selection which comparisons to ask for: random, ensemble disagreement, Bradley-Terry uncertainty,
             BALD, and a per-prompt cap on a batch (plain numbers; no torch, importable by feedback)
    bayes    the Laplace posterior of a linear Bradley-Terry model (Newton MAP, Hessian) and draws from
             it: an ensemble for the selection strategies

Every function is tested against values derived by hand (tests/test_ops.py, test_losses.py, test_stats.py,
test_selection.py, test_bayes.py).
"""
