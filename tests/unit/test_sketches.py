"""The retained sample and its bounds: exact while small, honest 95% bounds under churn."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
from datasketches import update_theta_sketch

from stream.config import CHANNELS as CONFIG_CHANNELS
from stream.sketches import (
    CHANNELS,
    NUM_CHANNELS,
    Estimate,
    RetainedSample,
    bounds,
    estimate_from_sample,
    hash_unit,
)

pytestmark = pytest.mark.unit

# Per-channel reachability probabilities: common, middling and rare channels.
CHANNEL_P = (0.6, 0.3, 0.1, 0.5, 0.05)


def draw_masks(rng: np.random.Generator, count: int) -> np.ndarray:
    bits = rng.random((count, NUM_CHANNELS)) < np.asarray(CHANNEL_P)
    return (bits.astype(np.int64) << np.arange(NUM_CHANNELS)).sum(axis=1)


def brute_force_state(members: dict[str, int], theta: float) -> dict[str, tuple[float, int]]:
    """What the sample must hold: every current member below theta."""
    return {uid: (hash_unit(uid), mask) for uid, mask in members.items() if hash_unit(uid) < theta}


def test_channels_match_config() -> None:
    assert CHANNELS == CONFIG_CHANNELS


def test_hash_unit_is_a_deterministic_exact_double_in_unit_interval() -> None:
    values = [hash_unit(f"u-{i}") for i in range(20000)]
    assert values[:3] == [hash_unit(f"u-{i}") for i in range(3)]
    assert all(0.0 <= v < 1.0 for v in values)
    # A multiple of 2**-53: exactly representable, so it survives a Redis score round trip.
    assert all((v * 2.0**53).is_integer() for v in values)
    assert all(float(repr(v)) == v for v in values)
    assert abs(sum(values) / len(values) - 0.5) < 0.01
    assert len(set(values)) == len(values)


def test_bounds_collapse_to_the_count_at_theta_one() -> None:
    assert bounds(0, 1.0) == (0.0, 0.0)
    assert bounds(1234, 1.0) == (1234.0, 1234.0)
    assert estimate_from_sample(7, 1.0) == Estimate(7.0, 7.0, 7.0)


@pytest.mark.parametrize(
    ("n", "theta"), [(0, 0.01), (1, 0.5), (5, 0.1), (40, 0.01), (120, 0.3), (121, 0.3), (4096, 0.04)]
)
def test_bounds_bracket_the_estimate(n: int, theta: float) -> None:
    est = estimate_from_sample(n, theta)
    assert est.estimate == n / theta
    assert n <= est.lower_95 <= est.estimate <= est.upper_95
    assert est.upper_95 > est.estimate or n == 0


def test_bounds_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="theta"):
        bounds(3, 0.0)
    with pytest.raises(ValueError, match="theta"):
        bounds(3, 1.5)
    with pytest.raises(ValueError, match="n must"):
        bounds(-1, 0.5)
    with pytest.raises(ValueError, match="num_std_dev"):
        bounds(3, 0.5, 0)


def _pmf(n: int, big_n: int, theta: float) -> float:
    return math.exp(
        math.lgamma(big_n + 1)
        - math.lgamma(n + 1)
        - math.lgamma(big_n - n + 1)
        + n * math.log(theta)
        + (big_n - n) * math.log1p(-theta)
    )


@pytest.mark.parametrize("theta", [0.001, 0.02, 0.1, 0.3, 0.6])
@pytest.mark.parametrize("mean", [0.5, 3, 20, 100, 121, 140, 400, 2000])
def test_bounds_are_honest_for_every_true_count(theta: float, mean: float) -> None:
    """Exact coverage, summed over the binomial law of n, for both the exact and the approximated range."""
    big_n = max(1, round(mean / theta))
    mu = big_n * theta
    sd = math.sqrt(mu * (1 - theta))
    covered = 0.0
    for n in range(max(0, int(mu - 9 * sd - 5)), min(big_n, int(mu + 9 * sd + 5)) + 1):
        lower, upper = bounds(n, theta, 2)
        if lower <= big_n <= upper:
            covered += _pmf(n, big_n, theta)
    assert covered >= 0.95, f"coverage {covered:.4f} at N={big_n}, theta={theta}"


@pytest.mark.parametrize(
    ("lg_k", "p", "items"),
    [(12, 1.0, 100_000), (10, 1.0, 300_000), (12, 0.01, 5_000), (12, 0.001, 30_000), (10, 0.3, 300)],
)
def test_bounds_agree_with_datasketches(lg_k: int, p: float, items: int) -> None:
    """Same (n, theta) in, DataSketches' own bounds out: equal above 120 samples, close below."""
    sketch = update_theta_sketch(lg_k, p=p)
    for i in range(items):
        sketch.update(f"ds-{lg_k}-{p}-{i}")
    lower, upper = bounds(sketch.num_retained, sketch.theta, 2)
    tolerance = 1e-9 if sketch.num_retained > 120 else 0.01
    assert lower == pytest.approx(sketch.get_lower_bound(2), rel=tolerance)
    assert upper == pytest.approx(sketch.get_upper_bound(2), rel=tolerance)


def test_bound_width_is_comparable_to_a_theta_sketch_on_insert_only_data() -> None:
    sketch = update_theta_sketch(12)
    sample = RetainedSample(12)
    for i in range(200_000):
        sketch.update(f"w-{i}")
        sample.update(f"w-{i}", True, 1)
    ours = sample.size()
    ds_width = sketch.get_upper_bound(2) - sketch.get_lower_bound(2)
    assert 0.6 < (ours.upper_95 - ours.lower_95) / ds_width < 1.5
    assert ours.lower_95 <= 200_000 <= ours.upper_95


def test_exact_below_nominal_entries_even_with_churn() -> None:
    rng = random.Random(7)
    sample = RetainedSample(10)  # K = 1024, trims only above 2048 retained
    members: dict[str, int] = {}
    for i in range(2000):
        uid, mask = f"x-{i}", rng.randrange(32)
        sample.update(uid, True, mask)
        members[uid] = mask
    for uid in rng.sample(sorted(members), 700):
        sample.update(uid, False)
        del members[uid]
    for uid in rng.sample(sorted(members), 300):
        members[uid] = rng.randrange(32)
        sample.update(uid, True, members[uid])
    for i in range(2000, 2040):  # newcomers and rejoiners
        uid = f"x-{i - 1000}" if i % 2 else f"x-{i}"
        members[uid] = rng.randrange(32)
        sample.update(uid, True, members[uid])

    assert sample.theta == 1.0
    n = len(members)
    assert sample.size() == Estimate(n, n, n)
    for c in range(NUM_CHANNELS):
        exact = sum(1 for mask in members.values() if mask >> c & 1)
        assert sample.reach(c) == Estimate(exact, exact, exact)


def test_sample_is_exactly_the_members_below_theta_through_trims() -> None:
    rng = random.Random(11)
    sample = RetainedSample(4)  # K = 16: many trims
    members: dict[str, int] = {}
    thetas = [1.0]
    for step in range(6000):
        uid = f"y-{rng.randrange(1500)}"
        if rng.random() < 0.6:
            members[uid] = rng.randrange(32)
            sample.update(uid, True, members[uid])
        else:
            members.pop(uid, None)
            sample.update(uid, False)
        assert sample.retained <= 2 * sample.nominal_entries
        if step % 97 == 0:
            assert sample.entries() == brute_force_state(members, sample.theta)
        thetas.append(sample.theta)
    assert sample.entries() == brute_force_state(members, sample.theta)
    assert all(a >= b for a, b in itertools.pairwise(thetas)), "theta never rises"
    assert sample.theta < 0.1
    counts = tuple(sum(1 for _, m in sample.entries().values() if m >> c & 1) for c in range(NUM_CHANNELS))
    assert sample.channel_counts() == counts


def test_trim_keeps_k_entries_below_the_k_plus_first_hash() -> None:
    sample = RetainedSample(5)  # K = 32
    ids = [f"t-{i}" for i in range(65)]
    for uid in ids:
        sample.update(uid, True, 3)
    hashes = sorted(hash_unit(uid) for uid in ids)
    assert sample.theta == hashes[32]
    assert sample.retained == 32
    assert sample.channel_counts() == (32, 32, 0, 0, 0)


def test_update_is_idempotent() -> None:
    sample = RetainedSample(4)
    for i in range(200):
        sample.update(f"z-{i}", True, i % 32)
    before = (sample.theta, sample.entries(), sample.channel_counts())
    for i in range(200):
        sample.update(f"z-{i}", True, i % 32)
    sample.update("gone", False)
    sample.update("gone", False)
    assert (sample.theta, sample.entries(), sample.channel_counts()) == before


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="lg_k"):
        RetainedSample(3)
    sample = RetainedSample(4)
    with pytest.raises(ValueError, match="mask"):
        sample.update("a", True, -1)
    with pytest.raises(ValueError, match="channel_index"):
        sample.reach(NUM_CHANNELS)


def run_churn_trial(rng: np.random.Generator, lg_k: int, tag: str) -> tuple[list[bool], float]:
    """200k joins, 35% of them leaving later, 10% of the stayers changing channels, all interleaved.

    Returns, for size then each channel, whether the truth fell inside the
    reported 95% bounds, and theta at the end.
    """
    users, leave_fraction = 200_000, 0.35
    ids = [f"{tag}-{i}" for i in range(users)]
    masks = draw_masks(rng, users)
    new_masks = draw_masks(rng, users)
    join_t = rng.random(users)
    leaves = np.zeros(users, dtype=bool)
    leaves[rng.permutation(users)[: int(users * leave_fraction)]] = True
    leave_t = join_t + rng.random(users) * (1.0 - join_t)
    changes = ~leaves & (rng.random(users) < 0.10)
    change_t = join_t + rng.random(users) * (1.0 - join_t)

    who = np.concatenate([np.arange(users), np.flatnonzero(leaves), np.flatnonzero(changes)])
    kind = np.concatenate([np.zeros(users), np.ones(leaves.sum()), np.full(changes.sum(), 2)]).astype(int)
    when = np.concatenate([join_t, leave_t[leaves], change_t[changes]])
    order = np.argsort(when, kind="stable")

    sample = RetainedSample(lg_k)
    update = sample.update
    mask_list, new_mask_list = masks.tolist(), new_masks.tolist()
    for i, k in zip(who[order].tolist(), kind[order].tolist(), strict=True):
        if k == 0:
            update(ids[i], True, mask_list[i])
        elif k == 1:
            update(ids[i], False)
        else:
            update(ids[i], True, new_mask_list[i])

    final = np.where(changes, new_masks, masks)[~leaves]
    truths = [len(final)] + [int(((final >> c) & 1).sum()) for c in range(NUM_CHANNELS)]
    estimates = [sample.size()] + [sample.reach(c) for c in range(NUM_CHANNELS)]
    inside = [e.lower_95 <= t <= e.upper_95 for e, t in zip(estimates, truths, strict=True)]
    return inside, sample.theta


def test_bounds_hold_under_heavy_churn() -> None:
    """The issue's acceptance test: truth inside the 95% bounds in >= 95% of trials, for each quantity."""
    rng = np.random.default_rng(20261129)
    trials = 40
    hits = np.zeros(1 + NUM_CHANNELS, dtype=int)
    for t in range(trials):
        inside, theta = run_churn_trial(rng, 10, f"churn10-{t}")
        assert theta < 0.05, "the sample must be in estimation mode for this test to mean anything"
        hits += inside
    rates = hits / trials
    print("coverage size, " + ", ".join(CHANNELS) + ":", rates.tolist())
    assert (hits >= math.ceil(0.95 * trials)).all(), f"coverage per quantity {rates.tolist()}"

    inside, theta = run_churn_trial(rng, 12, "churn12")
    assert theta < 0.1
    assert all(inside), inside
