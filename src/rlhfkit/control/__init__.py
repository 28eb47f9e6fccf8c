"""RLHF on an agent that moves: people (or a synthetic teacher) compare short trajectory segments of a
`gymnasium` environment, a reward ensemble over (observation, action) learns from the comparisons, and
PPO trains a Gaussian policy on the learned reward (Christiano et al., 2017).

    ppo        the Gaussian policy, vector-env rollouts, GAE (rlhfkit.math.ops.gae) and the clipped update
    reward     segments and the reward ensemble (Bradley-Terry on summed segment rewards)
    teacher    the synthetic teacher with B-Pref's imperfections (stochastic, myopic, mistakes, ties)
    selection  which pairs to ask: ensemble disagreement or random
    annotate   people: segment pairs as tasks of the feedback store, shown as animations in the web app
    loop       `rlhfkit control`: roll out -> query -> label -> refit -> improve, and the baselines
    report     report.html

Imported only by `rlhfkit control` (it needs gymnasium: `pip install rlhfkit[control]`).
"""
