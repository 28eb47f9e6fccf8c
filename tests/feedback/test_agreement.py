"""Agreement measures on inputs small enough to work out by hand (derivations in each docstring).

    pytest tests/feedback/test_agreement.py
"""

import pytest

from rlhfkit.feedback.agreement import disagreement, krippendorff_alpha_nominal, loo_majority_agreement


def test_alpha_two_coders_three_units():
    """Units u1 = [a, a], u2 = [a, b], u3 = [b, b]; each unit has m_u = 2 values, so each ordered
    pair counts 1/(m_u − 1) = 1.
    Coincidences: o_aa = 2 (u1), o_bb = 2 (u3), o_ab = o_ba = 1 (u2). n_a = 3, n_b = 3, n = 6.
    α = 1 − (n − 1)·Σ_{c≠k} o_ck / Σ_{c≠k} n_c n_k = 1 − 5·2 / (3·3 + 3·3) = 1 − 10/18 = 4/9."""
    votes = [("u1", "x", "a"), ("u1", "y", "a"), ("u2", "x", "a"), ("u2", "y", "b"),
             ("u3", "x", "b"), ("u3", "y", "b")]
    assert krippendorff_alpha_nominal(votes) == pytest.approx(4 / 9)


def test_alpha_three_coders_with_missing_value():
    """u1 = [a, a, b] (m = 3: pairs count 1/2), u2 = [b, b] (m = 2), u3 = [a] (one value: dropped).
    u1: o_aa += 2·1/2 = 1, o_ab += 2·1/2 = 1, o_ba += 1. u2: o_bb += 2.
    n_a = o_aa + o_ab = 2, n_b = o_ba + o_bb = 3, n = 5.
    α = 1 − 4·(1 + 1) / (2·3 + 3·2) = 1 − 8/12 = 1/3."""
    votes = [("u1", "x", "a"), ("u1", "y", "a"), ("u1", "z", "b"), ("u2", "x", "b"), ("u2", "y", "b"),
             ("u3", "x", "a")]
    assert krippendorff_alpha_nominal(votes) == pytest.approx(1 / 3)


def test_alpha_perfect_and_undefined():
    """Full agreement with variation across units gives 1; no variation at all leaves α undefined."""
    assert krippendorff_alpha_nominal([("u1", "x", "a"), ("u1", "y", "a"), ("u2", "x", "b"), ("u2", "y", "b")]) == 1.0
    assert krippendorff_alpha_nominal([("u1", "x", "a"), ("u1", "y", "a")]) is None
    assert krippendorff_alpha_nominal([("u1", "x", "a")]) is None


def test_alpha_matches_reference_implementation_loop():
    """The coincidence-matrix formula against the pairwise definition: α = 1 − D_o/D_e with
    D_o = mean disagreement over pairs within units, D_e = over all pairs of pairable values."""
    import itertools
    import random

    rng = random.Random(0)
    votes = [(u, c, rng.choice("abc")) for u in range(30) for c in range(rng.randint(1, 4))]
    units: dict = {}
    for u, _c, lab in votes:
        units.setdefault(u, []).append(lab)
    pairable = [v for labs in units.values() if len(labs) > 1 for v in labs]
    n = len(pairable)
    d_o = sum(sum(a != b for a, b in itertools.permutations(labs, 2)) / (len(labs) - 1)
              for labs in units.values() if len(labs) > 1) / n
    d_e = sum(a != b for a, b in itertools.permutations(pairable, 2)) / (n * (n - 1))
    assert krippendorff_alpha_nominal(votes) == pytest.approx(1 - d_o / d_e)


def test_loo_majority_agreement():
    """u1 = x:a, y:a, z:b. x held out: others [a, b] have two modes, x's a is one of them -> 1/2;
    y likewise 1/2; z held out: others [a, a], mode a, z said b -> 0.
    u2 = x:a, y:a, z:a: every held-out label matches -> 1, 1, 1.
    Overall (1/2 + 1/2 + 0 + 1 + 1 + 1)/6 = 2/3; x: (1/2 + 1)/2 = 3/4, y: 3/4, z: (0 + 1)/2 = 1/2."""
    votes = [("u1", "x", "a"), ("u1", "y", "a"), ("u1", "z", "b"), ("u2", "x", "a"), ("u2", "y", "a"),
             ("u2", "z", "a"), ("u3", "x", "b")]
    overall, per = loo_majority_agreement(votes)
    assert overall == pytest.approx(2 / 3)
    assert per == pytest.approx({"x": 0.75, "y": 0.75, "z": 0.5})


def test_disagreement():
    """Share of labels outside the most common one."""
    assert disagreement(["a", "a", "a"]) == 0.0
    assert disagreement(["a", "b"]) == 0.5
    assert disagreement(["a", "a", "b", "c"]) == 0.5
    assert disagreement([]) == 0.0
