"""The retained sample and its bounds: exact while small, honest 95% bounds under churn."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass

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
    return bits.astype(np.int64) @ (1 << np.arange(NUM_CHANNELS))


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


def test_update_is_update_hashed_with_hash_unit() -> None:
    by_id, by_hash = RetainedSample(4), RetainedSample(4)
    rng = random.Random(3)
    for _ in range(3000):
        uid, member, mask = f"h-{rng.randrange(400)}", rng.random() < 0.7, rng.randrange(32)
        by_id.update(uid, member, mask)
        by_hash.update_hashed(uid, hash_unit(uid), member, mask)
    assert (by_id.theta, by_id.entries()) == (by_hash.theta, by_hash.entries())
    assert by_id.theta < 1.0


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


@dataclass(frozen=True)
class ChurnSchedule:
    """Joins spread over [0, 1), a fixed share of members leaving at a later time, some changing channels."""

    masks: np.ndarray
    new_masks: np.ndarray
    join_t: np.ndarray
    leave_t: np.ndarray  # inf for members who stay
    changes: np.ndarray  # stayers whose mask becomes new_masks at change_t
    change_t: np.ndarray

    @property
    def stays(self) -> np.ndarray:
        return ~np.isfinite(self.leave_t)

    def final_masks(self) -> np.ndarray:
        return np.where(self.changes, self.new_masks, self.masks)

    def truths(self) -> list[int]:
        final = self.final_masks()[self.stays]
        return [len(final)] + [int(((final >> c) & 1).sum()) for c in range(NUM_CHANNELS)]


def make_schedule(rng: np.random.Generator, users: int, leave_fraction: float = 0.35) -> ChurnSchedule:
    masks, new_masks = draw_masks(rng, users), draw_masks(rng, users)
    join_t = rng.random(users)
    leaves = np.zeros(users, dtype=bool)
    leaves[rng.permutation(users)[: int(users * leave_fraction)]] = True
    leave_t = np.where(leaves, join_t + rng.random(users) * (1.0 - join_t), np.inf)
    changes = ~leaves & (rng.random(users) < 0.10)
    change_t = join_t + rng.random(users) * (1.0 - join_t)
    return ChurnSchedule(masks, new_masks, join_t, leave_t, changes, change_t)


def replay(schedule: ChurnSchedule, ids: list[str], u: list[float], lg_k: int) -> RetainedSample:
    """Every transition, in time order, through the reference sample (hashes computed once)."""
    users = len(ids)
    leavers = np.flatnonzero(~schedule.stays)
    changers = np.flatnonzero(schedule.changes)
    who = np.concatenate([np.arange(users), leavers, changers])
    kind = np.concatenate([np.zeros(users), np.ones(len(leavers)), np.full(len(changers), 2)]).astype(int)
    when = np.concatenate([schedule.join_t, schedule.leave_t[leavers], schedule.change_t[changers]])
    order = np.argsort(when, kind="stable")

    sample = RetainedSample(lg_k)
    update = sample.update_hashed
    masks, new_masks = schedule.masks.tolist(), schedule.new_masks.tolist()
    for i, k in zip(who[order].tolist(), kind[order].tolist(), strict=True):
        if k == 0:
            update(ids[i], u[i], True, masks[i])
        elif k == 1:
            update(ids[i], u[i], False)
        else:
            update(ids[i], u[i], True, new_masks[i])
    return sample


def simulate_theta(schedule: ChurnSchedule, u: np.ndarray, lg_k: int) -> float:
    """RetainedSample's final theta for this schedule, computed trim by trim with numpy.

    Only joins and leaves of users with u below the current theta move the
    retained count, and only the count decides when the next trim happens, so
    each stretch between trims is one cumulative sum. Channel changes never
    move theta. Checked against the reference in the real-hash trials.
    """
    k = 1 << lg_k
    users = len(u)
    leavers = np.flatnonzero(~schedule.stays)
    ev_user = np.concatenate([np.arange(users), leavers])
    ev_step = np.concatenate([np.ones(users, dtype=np.int64), -np.ones(len(leavers), dtype=np.int64)])
    order = np.argsort(np.concatenate([schedule.join_t, schedule.leave_t[leavers]]))
    ev_user, ev_step = ev_user[order], ev_step[order]
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    join_pos = position[:users]
    leave_pos = np.full(users, np.iinfo(np.int64).max)
    leave_pos[leavers] = position[users:]

    theta, start, retained = 1.0, 0, 0
    while True:
        admitted = np.flatnonzero(u[ev_user[start:]] < theta)
        count = retained + np.cumsum(ev_step[start:][admitted])
        over = np.flatnonzero(count > 2 * k)
        if len(over) == 0:
            return theta
        trim_at = start + int(admitted[over[0]])
        current = (join_pos <= trim_at) & (leave_pos > trim_at) & (u < theta)
        theta = float(np.partition(u[current], k)[k])
        start, retained = trim_at + 1, k


def inside_bounds(estimates: list[Estimate], truths: list[int]) -> list[bool]:
    return [e.lower_95 <= t <= e.upper_95 for e, t in zip(estimates, truths, strict=True)]


def run_churn_trial(rng: np.random.Generator, lg_k: int, tag: str) -> tuple[list[bool], float]:
    """200k joins, 35% of them leaving later, 10% of the stayers changing channels, all interleaved.

    Returns, for size then each channel, whether the truth fell inside the
    reported 95% bounds, and theta at the end.
    """
    users = 200_000
    schedule = make_schedule(rng, users)
    ids = [f"{tag}-{i}" for i in range(users)]
    u = [hash_unit(uid) for uid in ids]
    sample = replay(schedule, ids, u, lg_k)
    estimates = [sample.size()] + [sample.reach(c) for c in range(NUM_CHANNELS)]
    simulated = simulate_theta(schedule, np.asarray(u), lg_k)
    assert simulated == sample.theta, "vectorised replay disagrees with the reference"
    return inside_bounds(estimates, schedule.truths()), sample.theta


def test_bounds_hold_under_heavy_churn() -> None:
    """The issue's scenario on the reference sample with real hashes: 40 trials at lg_k 10, one at 12.

    Each trial checks size and the five channels against exact recounts.
    Coverage of a correct 95% interval is about 95.5%, so even a perfect
    implementation has every quantity at >= 38 of 40 in only about one run
    in five: 40 trials cannot *establish* 95%. This test therefore asserts a
    floor a calibrated interval misses with well under 1% probability per
    quantity (>= 35 of 40, i.e. at most 5 misses where 1.8 are expected) and
    prints the rates; ``test_coverage_over_many_trials`` measures the rate.
    """
    rng = np.random.default_rng(20261129)
    trials = 40
    hits = np.zeros(1 + NUM_CHANNELS, dtype=int)
    for t in range(trials):
        inside, theta = run_churn_trial(rng, 10, f"churn10-{t}")
        assert theta < 0.05, "the sample must be in estimation mode for this test to mean anything"
        hits += inside
    print("\n40 trials, lg_k 10: coverage of size, " + ", ".join(CHANNELS), (hits / trials).tolist())
    assert (hits >= 35).all(), f"hits per quantity out of {trials}: {hits.tolist()}"

    inside, theta = run_churn_trial(rng, 12, "churn12")
    print("1 trial, lg_k 12: inside the bounds for size, " + ", ".join(CHANNELS), inside)
    assert theta < 0.1
    assert sum(inside) >= 5, inside


def test_coverage_over_many_trials() -> None:
    """Enough trials to measure coverage: 1500 heavy-churn runs of the vectorised replay.

    Uniform u stand in for the hashes (the real-hash trials above check the
    replay against the reference). A smaller setting (30k users, lg_k 7)
    keeps it fast while still ending deep in estimation mode, with the rare
    channels' samples in the exact-binomial range and size's straddling the
    switch to the normal approximation at 120. This is the acceptance
    criterion itself: every quantity inside its 95% bounds in at least 95% of
    the trials (the seed is fixed, so the run is deterministic; it measured
    95.9-96.9% per quantity, and 95.2-96.0% over 10,000 trials by hand).
    """
    rng = np.random.default_rng(1129)
    trials, users, lg_k = 1500, 30_000, 7
    hits = np.zeros(1 + NUM_CHANNELS, dtype=int)
    for _ in range(trials):
        schedule = make_schedule(rng, users)
        u = np.floor(rng.random(users) * 2.0**53) / 2.0**53
        theta = simulate_theta(schedule, u, lg_k)
        retained = schedule.stays & (u < theta)
        final = schedule.final_masks()
        counts = [int(retained.sum())]
        counts += [int((retained & ((final >> c) & 1 == 1)).sum()) for c in range(NUM_CHANNELS)]
        hits += inside_bounds([estimate_from_sample(n, theta) for n in counts], schedule.truths())
    rates = hits / trials
    print(f"\n{trials} trials, lg_k {lg_k}: coverage of size, " + ", ".join(CHANNELS), rates.tolist())
    assert (rates >= 0.95).all(), rates.tolist()
