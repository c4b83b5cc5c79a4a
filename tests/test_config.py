"""Options: arguments over environment over defaults, and clear configuration errors."""

from __future__ import annotations

import pytest

from huggingplace import ConfigurationError, HuggingPlace
from huggingplace._config import resolve_options

from .conftest import KEY


def test_environment_supplies_every_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """HUGGINGPLACE_* variables configure a client built with no arguments."""
    monkeypatch.setenv("HUGGINGPLACE_API_KEY", KEY)
    monkeypatch.setenv("HUGGINGPLACE_ORG_ID", "org-env")
    monkeypatch.setenv("HUGGINGPLACE_BASE_URL", "http://127.0.0.1:8787/")
    monkeypatch.setenv("HUGGINGPLACE_MODE", "dev")
    monkeypatch.setenv("HUGGINGPLACE_TIMEOUT", "2.5")
    monkeypatch.setenv("HUGGINGPLACE_MAX_RETRIES", "1")
    hp = HuggingPlace()
    o = hp.options
    assert (o.api_key, o.org_id, o.base_url, o.mode, o.timeout, o.max_retries) == (
        KEY, "org-env", "http://127.0.0.1:8787", "dev", 2.5, 1,
    )
    assert o.url == "http://127.0.0.1:8787/v2/chatgpt/store_generated_response"
    hp.close()


def test_explicit_arguments_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """An argument beats the variable of the same option."""
    monkeypatch.setenv("HUGGINGPLACE_API_KEY", "env-key")
    monkeypatch.setenv("HUGGINGPLACE_ORG_ID", "env-org")
    monkeypatch.setenv("HUGGINGPLACE_MODE", "dev")
    o = resolve_options(api_key="arg-key", org_id=7, mode="prod")
    assert (o.api_key, o.org_id, o.mode) == ("arg-key", 7, "prod")


def test_defaults() -> None:
    """The contract's base URL and prod mode when nothing says otherwise."""
    o = resolve_options(api_key=KEY, org_id="o")
    assert o.base_url == "https://api.huggingplace.com"
    assert o.mode == "prod"
    assert o.timeout == 10.0 and o.max_retries == 3


def test_missing_key_names_the_variable() -> None:
    """No key anywhere: the error says which variable to set."""
    with pytest.raises(ConfigurationError, match="HUGGINGPLACE_API_KEY"):
        HuggingPlace(org_id="o")


def test_missing_org_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="HUGGINGPLACE_ORG_ID"):
        HuggingPlace(api_key=KEY)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"mode": "staging"}, "mode must be 'prod' or 'dev'"),
        ({"base_url": "api.huggingplace.com"}, "base_url must start with http"),
        ({"timeout": -1}, "timeout must be >= 0"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"max_retries": 1.5}, "max_retries must be a whole number"),
        ({"org_id": True}, "expected a non-empty string or an integer"),
        ({"api_key": "two words"}, "white space"),
    ],
)
def test_invalid_options_are_refused(overrides: dict[str, object], message: str) -> None:
    """Each bad option fails at construction with the option named."""
    options = {"api_key": KEY, "org_id": "o", **overrides}
    with pytest.raises(ConfigurationError, match=message):
        resolve_options(**options)  # type: ignore[arg-type]


def test_unknown_option_is_a_type_error() -> None:
    """A misspelt option is not silently ignored."""
    with pytest.raises(TypeError, match="timout"):
        HuggingPlace(api_key=KEY, org_id="o", timout=3)


def test_bad_timeout_from_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUGGINGPLACE_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError, match="HUGGINGPLACE_TIMEOUT"):
        resolve_options(api_key=KEY, org_id="o")


def test_options_repr_hides_the_key() -> None:
    o = resolve_options(api_key=KEY, org_id="o")
    assert KEY not in repr(o)
    assert "chars" in repr(o)
