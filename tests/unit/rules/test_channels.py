"""Reachability: identity present and not opted out, absent subscription meaning subscribed."""

from __future__ import annotations

import pytest

from stream.rules import CHANNELS, channel_mask, reachability, reachable, reachable_many

pytestmark = pytest.mark.unit

FULL = {"email": "a@x.io", "phone": "+91", "push_token": "t", "web_push_token": "w"}


def test_channel_order_is_the_contract() -> None:
    assert CHANNELS == ("email", "sms", "whatsapp", "push", "web_push")


def test_full_profile_no_subscriptions_reaches_everything() -> None:
    assert reachability(FULL, {}) == dict.fromkeys(CHANNELS, True)


def test_empty_profile_reaches_nothing() -> None:
    assert reachability({}, {}) == dict.fromkeys(CHANNELS, False)


@pytest.mark.parametrize(
    ("prop", "channels"),
    [
        ("email", {"email"}),
        ("phone", {"sms", "whatsapp"}),
        ("push_token", {"push"}),
        ("web_push_token", {"web_push"}),
    ],
)
def test_identity_per_channel(prop: str, channels: set[str]) -> None:
    reach = reachability({prop: "id"}, {})
    assert {c for c, ok in reach.items() if ok} == channels


@pytest.mark.parametrize("value", ["", "   ", 5, 0, True, False, 1.5])
def test_identity_must_be_a_non_blank_string(value: object) -> None:
    assert reachability({"email": value}, {})["email"] is False  # type: ignore[dict-item]


def test_only_explicit_false_opts_out() -> None:
    reach = reachability(FULL, {"email": False, "sms": True, "push": False})
    assert reach == {"email": False, "sms": True, "whatsapp": True, "push": False, "web_push": True}


def test_opt_out_of_sms_keeps_whatsapp() -> None:
    assert reachability({"phone": "+1"}, {"sms": False}) == {
        "email": False,
        "sms": False,
        "whatsapp": True,
        "push": False,
        "web_push": False,
    }


def test_subscription_without_identity_is_not_reachable() -> None:
    assert reachability({}, {"email": True})["email"] is False


def test_unknown_subscription_keys_are_ignored() -> None:
    assert reachability(FULL, {"fax": False}) == dict.fromkeys(CHANNELS, True)


@pytest.mark.parametrize(
    ("reach", "mask"),
    [
        ({}, 0),
        (dict.fromkeys(CHANNELS, False), 0),
        (dict.fromkeys(CHANNELS, True), 0b11111),
        ({"email": True}, 0b00001),
        ({"sms": True}, 0b00010),
        ({"whatsapp": True}, 0b00100),
        ({"push": True}, 0b01000),
        ({"web_push": True}, 0b10000),
        ({"email": True, "push": True, "sms": False}, 0b01001),
    ],
)
def test_channel_mask_bits(reach: dict[str, bool], mask: int) -> None:
    assert channel_mask(reach) == mask


def test_mask_bit_i_is_channel_i() -> None:
    for i, channel in enumerate(CHANNELS):
        assert channel_mask({channel: True}) == 1 << i


def test_reachable_many_is_reachable_per_user() -> None:
    profiles = [{"email": "a@x", "phone": "+91"}, {"email": "  "}, {}, {"phone": 5}, {"push_token": "t"}]
    subscriptions = [{"email": False}, {}, {"sms": True}, {"sms": True}, {"push": True}]
    for channel in CHANNELS:
        assert reachable_many(channel, profiles, subscriptions) == [
            reachable(channel, p, s) for p, s in zip(profiles, subscriptions, strict=True)]
