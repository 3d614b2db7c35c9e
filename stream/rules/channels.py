"""Channel reachability, the one definition every counter (live, sketch, recount) shares.

If the live path and the exact recount disagreed on what "reachable" means,
estimates could never reconcile with recounts; hence one pure function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from stream.rules.model import Scalar

CHANNELS: tuple[str, ...] = ("email", "sms", "whatsapp", "push", "web_push")

IDENTITY_PROP: Mapping[str, str] = {
    "email": "email",
    "sms": "phone",
    "whatsapp": "phone",
    "push": "push_token",
    "web_push": "web_push_token",
}


_CHANNEL_PROPS = tuple((channel, IDENTITY_PROP[channel]) for channel in CHANNELS)


def _has_identity(value: Scalar | None) -> bool:
    """A blank string is what a form sends when the field was cleared; it reaches nobody."""
    return isinstance(value, str) and value.strip() != ""


def reachable(channel: str, profile: Mapping[str, Scalar], subscriptions: Mapping[str, bool]) -> bool:
    """Only an explicit `False` opts out: users who never answered are subscribed."""
    return _has_identity(profile.get(IDENTITY_PROP[channel])) and subscriptions.get(channel) is not False


def reachable_many(channel: str, profiles: Sequence[Mapping[str, Scalar]],
                   subscriptions: Sequence[Mapping[str, bool]]) -> list[bool]:
    """`reachable` for many users at once (an export's column), the same test without a call per user."""
    prop = IDENTITY_PROP[channel]
    return [_has_identity(p.get(prop)) and s.get(channel) is not False
            for p, s in zip(profiles, subscriptions, strict=True)]


def reachability(profile: Mapping[str, Scalar], subscriptions: Mapping[str, bool]) -> dict[str, bool]:
    # `reachable` per channel, unrolled: this runs for every user on every touch and recount.
    return {
        channel: _has_identity(profile.get(prop)) and subscriptions.get(channel) is not False
        for channel, prop in _CHANNEL_PROPS
    }


def channel_mask(reach: Mapping[str, bool]) -> int:
    """Packs reachability into the few bits a sketch summary can afford to carry per member."""
    mask = 0
    for bit, channel in enumerate(CHANNELS):
        if reach.get(channel):
            mask |= 1 << bit
    return mask
