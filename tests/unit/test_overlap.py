"""Overlap of two segments from their samples: exact while small, honest 95% bounds beyond."""

from __future__ import annotations

import random
from collections.abc import Set as AbstractSet

import pytest

from stream.overlap import OverlapCounts, common_theta, count_overlap, estimate_overlap
from stream.sketches import Estimate, RetainedSample, hash_unit

pytestmark = pytest.mark.unit


def hashed(ids: set[str]) -> dict[str, float]:
    return {uid: hash_unit(uid) for uid in ids}


def sample_of(members: set[str], lg_k: int, leavers: AbstractSet[str] = frozenset()) -> RetainedSample:
    """A sample fed the way the engine feeds it: everyone joins, then the leavers leave."""
    sample = RetainedSample(lg_k)
    for uid in sorted(members | leavers):
        sample.update(uid, True, 1)
    for uid in sorted(leavers):
        sample.update(uid, False)
    return sample


def entries(sample: RetainedSample) -> dict[str, float]:
    return {uid: u for uid, (u, _) in sample.entries().items()}


def test_exact_at_theta_one() -> None:
    a = {f"u-{i}" for i in range(0, 70)}
    b = {f"u-{i}" for i in range(50, 200)}
    result = estimate_overlap(hashed(a), 1.0, hashed(b), 1.0)
    assert result.exact
    assert result.both == Estimate(20.0, 20.0, 20.0)
    assert result.only_a == Estimate(50.0, 50.0, 50.0)
    assert result.only_b == Estimate(130.0, 130.0, 130.0)


def test_empty_and_identical_segments() -> None:
    a = hashed({f"u-{i}" for i in range(30)})
    assert count_overlap({}, 1.0, {}, 1.0) == OverlapCounts(0, 0, 0, 1.0)
    assert count_overlap({}, 0.5, {}, 0.25) == OverlapCounts(0, 0, 0, 0.25)
    same = count_overlap(a, 1.0, a, 1.0)
    assert (same.both, same.only_a, same.only_b) == (30, 0, 0)
    assert count_overlap(a, 1.0, {}, 1.0).only_a == 30


def test_entries_above_the_common_theta_are_dropped_on_both_sides() -> None:
    # A is small (theta 1) and holds members B's sample (theta 0.5) could never have held:
    # counted, they would all look like "only A".
    a = {"lo": 0.1, "hi": 0.7, "lo-a": 0.2}
    b = {"lo": 0.1, "lo-b": 0.3}
    counts = count_overlap(a, 1.0, b, 0.5)
    assert (counts.both, counts.only_a, counts.only_b, counts.theta) == (1, 1, 1, 0.5)
    result = estimate_overlap(a, 1.0, b, 0.5)
    assert result.both.estimate == 2.0
    assert not result.exact
    assert result.both.lower_95 >= 1.0
    assert result.both.upper_95 > 2.0


def test_common_theta_is_the_smaller_and_checked() -> None:
    assert common_theta(0.25, 0.5) == common_theta(0.5, 0.25) == 0.25
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="theta"):
            common_theta(bad, 1.0)
        with pytest.raises(ValueError, match="theta"):
            count_overlap({}, 1.0, {}, bad)


def test_samples_share_their_coins_through_trims_and_leaves() -> None:
    """Below the common theta, each part's sampled entries are exactly its members below theta."""
    rng = random.Random(7)
    everyone = [f"u-{i}" for i in range(6000)]
    a = set(rng.sample(everyone, 2500))
    b = set(rng.sample(everyone, 4000))
    a_left = set(rng.sample(sorted(set(everyone) - a), 800))
    sa, sb = sample_of(a, 6, a_left), sample_of(b, 7)
    assert sa.theta < 1.0
    assert sb.theta < 1.0
    counts = count_overlap(entries(sa), sa.theta, entries(sb), sb.theta)
    theta = min(sa.theta, sb.theta)
    below = {uid for uid in everyone if hash_unit(uid) < theta}
    assert counts.theta == theta
    assert counts.both == len(a & b & below)
    assert counts.only_a == len((a - b) & below)
    assert counts.only_b == len((b - a) & below)


def test_below_nominal_entries_the_overlap_is_exact_with_churn() -> None:
    a = {f"u-{i}" for i in range(0, 40)}
    b = {f"u-{i}" for i in range(25, 90)}
    sa = sample_of(a, 6, leavers={f"x-{i}" for i in range(60)})  # joined and left: 100 < 2K = 128 entries
    sb = sample_of(b, 6)
    assert sa.theta == sb.theta == 1.0
    result = estimate_overlap(entries(sa), sa.theta, entries(sb), sb.theta)
    assert (result.both, result.only_a, result.only_b) == (
        Estimate(15.0, 15.0, 15.0), Estimate(25.0, 25.0, 25.0), Estimate(50.0, 50.0, 50.0))


def test_bounds_cover_the_truth_in_most_trials() -> None:
    """Each part's 95% interval covers its true size in at least ~95% of trials (90% asserted, so
    the test is not flaky: with 95.45% coverage, 200 trials fall below 90% with odds under 1e-3).

    Segments of different sizes with churn (A loses members after joining), samples small enough
    (lg_k 7 and 5) that both trim, A's theta the larger (so its entries above B's theta must be
    dropped), fresh user ids each trial so the hashes differ."""
    trials = 200
    truth = {"both": 300, "only_a": 250, "only_b": 900}
    covered = dict.fromkeys(truth, 0)
    sums = dict.fromkeys(truth, 0.0)
    for trial in range(trials):
        ids = [f"t{trial}-{i}" for i in range(sum(truth.values()) + 400)]
        both = set(ids[:300])
        only_a = set(ids[300:550])
        only_b = set(ids[550:1450])
        leavers = set(ids[1450:])
        sa = sample_of(both | only_a, 7, leavers)
        sb = sample_of(both | only_b, 5)
        assert 1.0 > sa.theta > sb.theta
        result = estimate_overlap(entries(sa), sa.theta, entries(sb), sb.theta)
        assert not result.exact
        for part, est in (("both", result.both), ("only_a", result.only_a), ("only_b", result.only_b)):
            assert est.lower_95 <= est.estimate <= est.upper_95
            covered[part] += est.lower_95 <= truth[part] <= est.upper_95
            sums[part] += est.estimate
    for part, n in truth.items():
        assert covered[part] >= 0.90 * trials, (part, covered)
        # n/theta is unbiased: the mean of 200 estimates sits within a few standard errors of the truth
        assert abs(sums[part] / trials - n) < 0.1 * n, (part, sums[part] / trials)
