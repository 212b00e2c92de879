"""The significance machinery on synthetic samples: exactness, the A/A false-positive
rate at the nominal level, and power as computed by ``mde``."""
import math

import numpy as np
import pytest

from alloclab.harness import significance as sig


def test_exact_u_test_known_values():
    # complete separation of 3 and 3: U = 0, p = 2 / C(6, 3)
    u, p = sig.mann_whitney([1, 2, 3], [4, 5, 6])
    assert u == 0 and p == pytest.approx(2 / 20)
    u, p = sig.mann_whitney([4, 5, 6], [1, 2, 3])
    assert u == 9 and p == pytest.approx(0.1)
    # identical interleaving: p = 1
    assert sig.mann_whitney([1, 4], [2, 3])[1] == pytest.approx(1.0)
    assert sig.min_p(3, 3) == pytest.approx(0.1)


def test_exact_and_normal_approximation_agree_at_moderate_sizes():
    rng = np.random.default_rng(3)
    for _ in range(20):
        x, y = rng.normal(size=18), rng.normal(0.5, 1, size=20)   # 360 pairs: exact
        _, p_exact = sig.mann_whitney(x, y)
        _, p_norm = sig.mann_whitney(x, y, exact=False)
        assert abs(p_exact - p_norm) < 0.01


def test_u_counts_are_a_distribution():
    c = sig._u_counts(5, 7)
    assert c.sum() == math.comb(12, 5)
    assert np.allclose(c, c[::-1])  # symmetric about n*m/2


def test_adjustments_match_hand_computed_values():
    p = [0.01, 0.04, 0.03, 0.5]
    # sorted 0.01, 0.03, 0.04, 0.5; BH: p * 4 / rank = .04, .06, .0533, .5, then the running min from the top
    assert np.allclose(sig.bh_adjust(p), [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    # Holm: p * (4, 3, 2, 1) = .04, .09, .08, .5, then the running max from the bottom
    assert np.allclose(sig.holm_adjust(p), [0.04, 0.09, 0.09, 0.5])


def _lognormal_pairs(rng, cells, n, sigma, shift=0.0):
    return [(np.exp(rng.normal(0, sigma, n)), np.exp(rng.normal(shift, sigma, n))) for _ in range(cells)]


def test_aa_false_positive_rate_is_at_most_nominal():
    rng = np.random.default_rng(7)
    # per cell: the exact test at 5% rejects at most 5% of identical pairs
    ps = [sig.mann_whitney(a, b)[1] for a, b in _lognormal_pairs(rng, 2000, 6, 0.1)]
    assert np.mean(np.array(ps) < 0.05) <= 0.05 + 0.012  # 0.012 ~ 2.5 binomial SEs at 2000
    # per comparison of 45 cells: any cell flagged at most ~5% of the time under BH
    flagged = 0
    trials = 300
    for _ in range(trials):
        v = sig.verdicts(_lognormal_pairs(rng, 45, 6, 0.1))
        flagged += any(x.significant for x in v)
    assert flagged / trials <= 0.05 + 0.035   # 0.035 ~ 2.8 SEs at 300 trials


@pytest.mark.parametrize("n,sigma", [(10, 0.05), (8, 0.2), (5, 0.1), (30, 0.1)])
def test_power_at_the_computed_mde_is_as_computed(n, sigma):
    effect = sig.mde(sigma, n, n)
    assert 0 < effect < 1
    rng = np.random.default_rng(11)
    pairs = _lognormal_pairs(rng, 1500, n, sigma, shift=math.log1p(effect))
    power = np.mean([sig.mann_whitney(a, b)[1] < sig.ALPHA for a, b in pairs])
    assert abs(power - sig.POWER) < 0.05, (effect, power)
    # and half the effect is detected far less often
    pairs = _lognormal_pairs(rng, 1500, n, sigma, shift=math.log1p(effect / 2))
    assert np.mean([sig.mann_whitney(a, b)[1] < sig.ALPHA for a, b in pairs]) < 0.5


def test_too_few_samples_cannot_be_significant_however_large_the_change():
    v = sig.verdicts([([100, 101, 102], [200, 201, 202])])[0]
    assert v.verdict == "~" and math.isinf(v.mde)
    assert v.ratio == pytest.approx(201 / 101)


def test_a_real_slowdown_in_many_cells_is_called_slower_and_a_speedup_faster():
    rng = np.random.default_rng(5)
    pairs = _lognormal_pairs(rng, 8, 6, 0.05, shift=math.log(1.2)) + _lognormal_pairs(rng, 37, 6, 0.05)
    v = sig.verdicts(pairs)
    assert sum(x.verdict == "slower" for x in v[:8]) >= 7
    assert sum(x.significant for x in v[8:]) <= 1
    v = sig.verdicts(_lognormal_pairs(rng, 8, 6, 0.05, shift=math.log(0.8)))
    assert all(x.verdict == "faster" for x in v)


def test_process_samples_are_the_median_of_each_process():
    vals = [1.0, 3.0, 2.0, 10.0, 12.0, 11.0]
    procs = [0, 0, 0, 1, 1, 1]
    assert list(sig.process_samples(vals, procs)) == [2.0, 11.0]


def test_variance_split_recovers_the_two_levels():
    rng = np.random.default_rng(2)
    k, r = 200, 4
    proc_effect = rng.normal(0, 0.10, k)          # between processes: sigma 0.10
    vals, procs = [], []
    for i in range(k):
        vals += list(np.exp(proc_effect[i] + rng.normal(0, 0.02, r)))   # within: sigma 0.02
        procs += [i] * r
    s = sig.variance_split(vals, procs)
    assert s.processes == k and s.reps == r
    assert s.between == pytest.approx(0.01, rel=0.25)
    assert s.within == pytest.approx(0.0004, rel=0.15)
    assert s.share_between > 0.9


def test_plan_puts_repetitions_where_the_variance_is():
    # noise between processes: one rep per process, many processes
    k1, r1 = sig.plan_repetitions(sig.VarianceSplit(0.01, 0.0004, 5, 3), cost_process_s=2.0, cost_rep_s=0.1)
    assert r1 == 1 and k1 > 5
    # noise inside the process and costly processes: several reps each, fewer processes
    k2, r2 = sig.plan_repetitions(sig.VarianceSplit(0.0001, 0.01, 5, 3), cost_process_s=2.0, cost_rep_s=0.1)
    assert r2 > 3 and k2 <= k1
    # the plan reaches the target: the MDE at the planned counts is at most 10%
    sigma = math.sqrt(0.01 + 0.0004 / r1)
    assert sig.mde(sigma, k1, k1) <= 0.10 < sig.mde(sigma, k1 - 1, k1 - 1)


# ---------------------------------------------------------------- paired: both sides in each process

def _paired(rng, cells, n, sigma_process, sigma_pair, shift=0.0):
    """Matched samples whose processes differ by ``sigma_process`` (shared by both sides) and
    whose two sides differ within a process by ``sigma_pair``."""
    out = []
    for _ in range(cells):
        proc = rng.normal(0, sigma_process, n)
        out.append((np.exp(proc + rng.normal(0, sigma_pair, n)), np.exp(proc + shift + rng.normal(0, sigma_pair, n))))
    return out


def test_signed_rank_exact_values():
    # all 6 differences positive: W+ = 21, p = 2 / 2^6
    w, p = sig.signed_rank([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert w == 21 and p == pytest.approx(2 / 64)
    assert sig.signed_rank([-0.1, -0.2, -0.3, -0.4, -0.5])[1] == pytest.approx(sig.min_p_paired(5)) == 0.0625
    # balanced signs: p = 1
    assert sig.signed_rank([0.1, -0.2, 0.3, -0.4, -0.5, 0.6, 0.7, -0.8])[1] > 0.5
    assert sig._w_counts(7).sum() == 2 ** 7


def test_paired_aa_false_positive_rate_is_at_most_nominal():
    rng = np.random.default_rng(17)
    ps = [sig.signed_rank(np.log(b / a))[1] for a, b in _paired(rng, 2000, 8, 0.3, 0.05)]
    assert np.mean(np.array(ps) < 0.05) <= 0.05 + 0.012
    flagged = sum(any(v.significant for v in sig.paired_verdicts(_paired(rng, 20, 8, 0.3, 0.05)))
                  for _ in range(300))
    assert flagged / 300 <= 0.05 + 0.035


@pytest.mark.parametrize("n,sigma", [(6, 0.05), (8, 0.1), (12, 0.05)])
def test_paired_power_at_the_computed_mde_is_as_computed(n, sigma):
    # the pair's spread is sigma * sqrt(2) in the log ratio: that is what mde_paired is given
    effect = sig.mde_paired(sigma * math.sqrt(2), n)
    assert 0 < effect < 1
    rng = np.random.default_rng(19)
    pairs = _paired(rng, 1500, n, 0.3, sigma, shift=math.log1p(effect))
    power = np.mean([sig.signed_rank(np.log(b / a))[1] < sig.ALPHA for a, b in pairs])
    assert abs(power - sig.POWER) < 0.05, (effect, power)


def test_pairing_detects_what_the_process_spread_hides_from_the_unpaired_test():
    # processes differ by 30%, the change is 10%, the two sides of a process differ by 3%
    rng = np.random.default_rng(23)
    pairs = _paired(rng, 6, 8, 0.3, 0.03, shift=math.log(1.1))
    assert all(v.verdict == "slower" for v in sig.paired_verdicts(pairs))
    assert sum(v.verdict == "slower" for v in sig.verdicts(pairs)) <= 2
    with pytest.raises(ValueError, match="one old and one new value per process"):
        sig.paired_verdicts([([1.0, 2.0], [1.0])])
    # five pairs can never reach 5%: "~" however large the change
    v = sig.paired_verdicts([([1.0, 1.1, 0.9, 1.2, 1.0], [2.0, 2.2, 1.8, 2.4, 2.1])])[0]
    assert v.verdict == "~" and math.isinf(v.mde)
