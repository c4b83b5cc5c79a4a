"""Redaction: a corpus of real-looking secrets and PII that must be caught, and look-alikes that
must pass untouched (git SHAs, UUIDs, hashes in URLs, versions, dates)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from huggingplace import ConfigurationError
from huggingplace._redact import build_redactor

# fake values built to look real; none of them is a live credential
TRUE_SECRETS = [
    ("openai_key", "sk-proj-4fJ9a8Qw2LzX7bN1cV5mK3tR6yH0uE8iO2pA"),
    ("openai_key", "sk-9aB8cD7eF6gH5iJ4kL3mN2oP1qR0sT9uV8wX7yZ6"),
    ("anthropic_key", "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Jh1Gf0EdCbA-_xyz"),
    ("aws_access_key", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_secret_key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("github_token", "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"),
    ("github_token", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv"),
    ("google_api_key", "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"),
    ("slack_token", "xoxb-123456789012-1234567890123-AbCdEfGhIjKl"),
    ("stripe_key", "sk_live_51HxYzAbCdEfGhIjKlMnOpQr"),
    ("huggingface_token", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
    ("jwt", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
            "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"),
    ("bearer_token", "Authorization: Bearer abc123def456ghi789jkl012"),
    ("private_key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nabc\n-----END RSA PRIVATE KEY-----"),
    ("private_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE\n-----END OPENSSH PRIVATE KEY-----"),
    ("password", "postgres://app:Sup3rS3cret@db.internal:5432/prod"),
    ("secret", "password=hunter2hunter2"),
    ("secret", 'api_key: "zaq1xsw2cde3vfr4"'),
]

TRUE_PII = [
    ("email", "jane.doe+test@example.co.uk"),
    ("phone", "+1 415-555-0132"),
    ("phone", "(415) 555-0132"),
    ("phone", "415.555.0132"),
    ("phone", "+44 20 7946 0958"),
    ("card_number", "4111 1111 1111 1111"),
    ("card_number", "5500-0000-0000-0004"),
    ("card_number", "378282246310005"),
    ("ip_address", "192.168.10.254"),
    ("ip_address", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
    ("us_ssn", "123-45-6789"),
]

LOOK_ALIKES = [
    "commit 3f786850e387550fdab836ed7e6dc881de23001b",
    "id 123e4567-e89b-12d3-a456-426614174000",
    "https://cdn.example.com/assets/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08.js",
    "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709 and md5 d41d8cd98f00b204e9800998ecf8427e",
    "version 1.2.3 and 10.0.0.1.5",
    "on 2026-11-22 at 08:15",
    "order 4111 1111 1111 1112 (fails Luhn)",
    "ISBN 978-3-16-148410-0",
    "total 1,234,567.89 units",
    "the word password alone, and token counts: 1234",
    "AKIA is a prefix but AKIAshort is not a key",
    "sk-short",
    "base64 of a hash: 2jmj7l5rSw0yVb/vlWAYkK/YBwk=",
]


@pytest.mark.parametrize("kind, text", TRUE_SECRETS)
def test_secrets_are_caught_by_default(kind: str, text: str) -> None:
    out = build_redactor("secrets").text(f"before {text} after")
    assert f"[REDACTED:{kind}]" in out
    assert out.startswith("before ") and out.endswith(" after")


@pytest.mark.parametrize("kind, text", TRUE_PII)
def test_pii_is_caught_with_the_pii_policy(kind: str, text: str) -> None:
    assert f"[REDACTED:{kind}]" in build_redactor("pii").text(f"contact: {text}.")
    assert build_redactor("secrets").text(f"contact: {text}.") == f"contact: {text}."


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_look_alikes_pass_untouched(text: str) -> None:
    """git SHAs, UUIDs and hashes are not keys (modelstat redacts SHAs as AWS keys)."""
    assert build_redactor("pii").text(text) == text


def test_labels_stay_readable() -> None:
    out = build_redactor("secrets").text("password=hunter2hunter2 and Bearer abcdefghijklmnopqrstu")
    assert out == "password=[REDACTED:secret] and Bearer [REDACTED:bearer_token]"


def test_policies_compose_and_none_switches_off() -> None:
    upper = build_redactor(["secrets", str.upper])
    assert upper.text("key sk-proj-4fJ9a8Qw2LzX7bN1cV5mK3tR6yH0uE8iO2pA") == "KEY [REDACTED:OPENAI_KEY]"
    raw = "sk-proj-4fJ9a8Qw2LzX7bN1cV5mK3tR6yH0uE8iO2pA"
    assert build_redactor("none").text(raw) == raw


def test_unknown_policy_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="redact must be"):
        build_redactor("everything")


def test_values_are_redacted_deeply_but_keys_are_kept() -> None:
    value = {"user": {"email": "a@b.io", "notes": ["call 415-555-0132"]}, "n": 3}
    assert build_redactor("pii").value(value) == {
        "user": {"email": "[REDACTED:email]", "notes": ["call [REDACTED:phone]"]}, "n": 3,
    }


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_redaction_never_raises_and_is_idempotent(text: str) -> None:
    r = build_redactor("pii")
    once = r.text(text)
    assert r.text(once) == once


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([
    "sk-proj-abcdefghijklmnopqrstuvwx", "AKIAABCDEFGHIJKLMNOP", "password=hunter22", "jane@example.com",
    "4111 1111 1111 1111", "+44 20 7946 0958", "10.0.0.1", "Bearer abcdefghijklmnopqrstuvwxyz",
    "postgres://u:pw@host/db", "eyJhbGciOi.eyJzdWIiOi.abcdefghijklmn", "fe80::1:2:3:4", "hp_live_abcdefghijklmnopqrs",
    "ghp_" + "a" * 36, "xoxb-1234567890-abc", "AIza" + "b" * 35, "API_KEY: 'abcdef123'", "1.2M", " ", "sales", "é",
    "PassWord: Hunter22x", "BEARER abcdefghijklmnopqrstuvwxyz", "\u017fecret=abcdefgh", "to\u212aen=abcdefgh", "\u0130",
]), max_size=8), st.sampled_from(["secrets", "pii"]))
def test_anchored_rules_redact_exactly_what_running_every_rule_would(parts: list[str], policy: str) -> None:
    """The anchors only skip rules that could not match: same output as applying all of them."""
    from huggingplace._redact import DETECTORS, build_redactor

    text = " ".join(parts)
    expected = text
    for _, pattern, replacement in DETECTORS[policy]:
        expected = pattern.sub(replacement, expected)
    assert build_redactor(policy).text(text) == expected


_PIECES = st.sampled_from([
    "sk-proj-abcdefghijklmnopqrstuvwx", "password=hunter22", "jane@example.com", "4111 1111 1111 1111",
    "10.0.0.1", "hp_live_abcdefghijklmnopqrs", "to\u212aen=abcdefgh", "1.2M", "sales", "é", "", "token", "sk",
    "-ant-",
])
_TEXTS = st.lists(_PIECES, max_size=4).map(" ".join)
_VALUES = st.recursive(_TEXTS | st.integers() | st.none(),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXTS, inner, max_size=3),
                       max_leaves=8)


@settings(max_examples=400, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    "user_prompt": _TEXTS, "ai_response": _TEXTS, "metaData": st.dictionaries(_TEXTS, _VALUES, max_size=3),
    "user_meta_data": st.dictionaries(_TEXTS, _VALUES, max_size=3), "step_data": st.lists(_VALUES, max_size=3),
    "mapping_table": _TEXTS | st.dictionaries(_TEXTS, _VALUES, max_size=2),
    "error": st.fixed_dictionaries({"type": _TEXTS, "message": _TEXTS}), "llm_model": _TEXTS,
}), st.sampled_from(["secrets", "pii"]))
def test_screening_a_records_text_at_once_redacts_what_the_walk_would(payload: dict[str, Any], policy: str) -> None:
    """A record whose strings hold no anchor is cleared in one screen; any other is walked field
    by field. Either way the result is the walk's: the screen never lets a secret through."""
    import copy

    from huggingplace._privacy import PrivacyConfig, Processor
    from huggingplace._stats import Stats

    screened = Processor(PrivacyConfig(redact=policy), Stats())
    walked = Processor(PrivacyConfig(redact=policy), Stats())
    walked.redactor._screens = None  # what could_change answers for a callable: always walk
    a, b = copy.deepcopy(payload), copy.deepcopy(payload)
    screened._redact(a)
    walked._redact(b)
    assert a == b


def test_the_screen_sees_every_string_a_record_carries_and_never_skips_a_callable() -> None:
    r = build_redactor("secrets")
    assert not r.could_change(["What were sales last quarter?", "1.2M", "sql-bot"])
    assert r.could_change(["fine", "nested sk-proj-abcdefghijklmnopqrstuvwx"])
    assert not r.could_change(["s", "k-"])  # two texts never make an anchor between them
    assert build_redactor(["secrets", str.upper]).could_change(["plain"])
    assert build_redactor(str.upper).could_change([])
