"""How two segments overlap, estimated from their retained samples (pure; no I/O).

Why this works without a sketch intersection: each segment's sample holds
exactly its current members whose ``hash_unit(user_id)`` is below that
sample's theta (``stream.sketches``), and every segment uses the same hash.
Below ``theta = min(theta_a, theta_b)`` both samples are therefore Bernoulli
samples of their segments *with the same coin per user*: someone in both
segments is kept by both samples or by neither. So the entries of A and B
below theta split into three counts, each a Bernoulli(theta) sample count of
one part of the Venn diagram (A and B, A only, B only), and each part gets the
same unbiased n/theta and the same 95% bounds as a segment's size.

What this cannot do is beat the sample size: theta is set by the larger
segment, so a small overlap of a big segment is estimated from few entries
and comes back with wide (but honest) bounds; ``mode=exact`` walks the member
sets instead. Both samples being below nominal entries (theta 1) makes every
count exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stream.sketches import Estimate, estimate_from_sample

__all__ = ["OverlapCounts", "OverlapEstimate", "common_theta", "count_overlap", "estimate_overlap"]


@dataclass(frozen=True, slots=True)
class OverlapCounts:
    """Sampled entries in both samples, only in A's and only in B's, all below ``theta``."""

    both: int
    only_a: int
    only_b: int
    theta: float


@dataclass(frozen=True, slots=True)
class OverlapEstimate:
    """The three parts of the overlap, each with its 95% bounds, and the theta they came from."""

    both: Estimate
    only_a: Estimate
    only_b: Estimate
    theta: float

    @property
    def exact(self) -> bool:
        """Theta 1: every member of both segments was in the samples, so the counts are exact."""
        return self.theta == 1.0


def common_theta(theta_a: float, theta_b: float) -> float:
    """The sampling probability both samples cover: the smaller theta."""
    for theta in (theta_a, theta_b):
        if not 0.0 < theta <= 1.0:
            raise ValueError(f"theta must be in (0, 1], got {theta}")
    return min(theta_a, theta_b)


def count_overlap(a: Mapping[str, float], theta_a: float, b: Mapping[str, float], theta_b: float) -> OverlapCounts:
    """Count both / only A / only B among the entries (user id -> u) of two samples.

    Entries at or above the common theta are dropped first, on both sides:
    keeping them from the sample with the larger theta would count as "only
    A" members whom B's sample could never have held.
    """
    theta = common_theta(theta_a, theta_b)
    kept_a = {uid for uid, u in a.items() if u < theta}
    kept_b = {uid for uid, u in b.items() if u < theta}
    both = len(kept_a & kept_b)
    return OverlapCounts(both=both, only_a=len(kept_a) - both, only_b=len(kept_b) - both, theta=theta)


def estimate_overlap(a: Mapping[str, float], theta_a: float, b: Mapping[str, float],
                     theta_b: float) -> OverlapEstimate:
    """Each part of the overlap as n/theta with ``stream.sketches.bounds`` at 2 standard deviations."""
    counts = count_overlap(a, theta_a, b, theta_b)
    return OverlapEstimate(
        both=estimate_from_sample(counts.both, counts.theta),
        only_a=estimate_from_sample(counts.only_a, counts.theta),
        only_b=estimate_from_sample(counts.only_b, counts.theta),
        theta=counts.theta,
    )
