"""Client options: keyword arguments, then ``HUGGINGPLACE_*`` environment variables, then defaults.

Resolved once, when a client is built, into a frozen :class:`Options`; nothing reads the
environment after that.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Literal, Mapping, Optional, TypedDict, Union

import attrs

from ._exceptions import ConfigurationError

DEFAULT_BASE_URL = "https://api.huggingplace.com"
ROUTE = "/v2/chatgpt/store_generated_response"
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 3
MODES = ("prod", "dev")

OrgId = Union[str, int]


def _mask(key: str) -> str:
    """What a key looks like in a repr: its length only, never a character of it."""
    return f"<{len(key)} chars>" if key else "<unset>"


@attrs.frozen(kw_only=True)
class Options:
    """Everything a client needs to send a record, validated and frozen."""

    api_key: str = attrs.field(repr=_mask)
    org_id: OrgId
    base_url: str = DEFAULT_BASE_URL
    mode: str = "prod"
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 60.0
    path: str = ROUTE

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + self.path


@attrs.frozen(kw_only=True)
class BackgroundConfig:
    """Bounds and timings of background delivery (``background=True``)."""

    max_queue: int = 10_000
    max_queue_bytes: int = 32 * 1024 * 1024
    batch_size: int = 100
    batch_bytes: int = 4 * 1024 * 1024
    flush_interval: float = 0.2  #: the longest a partial batch waits for company
    concurrency: int = 64  #: the most requests in flight on the single-record route (see _pacing)
    spool_dir: Optional[str] = None
    spool_max_bytes: int = 256 * 1024 * 1024
    replay_interval: float = 10.0  #: how often an idle worker looks for other processes' spool files
    durable: bool = False
    auth_pause: float = 30.0
    max_pause: float = 300.0
    probe_max: float = 1.5  #: the probe backoff's cap while the endpoint is down (+-20% jitter)
    overflow_chunk: int = 256
    exit_timeout: float = 3.0  #: the exit deadline: sending at exit / on SIGTERM stops after it
    handle_signals: bool = True  #: chain a bounded flush onto SIGTERM / SIGINT (see docs/hosts/index.md)
    use_batch_route: bool = True
    #: where delivery runs: "thread" (a thread of this process) or "process" (a sender process
    #: at a lower priority; see docs/background.md)
    sender: str = "thread"


SENDERS = ("thread", "process")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def env_flag(name: str, environ: Mapping[str, str] | None = None) -> bool | None:
    """A boolean environment variable, or None when unset; anything else is a ConfigurationError."""
    value = _env(os.environ if environ is None else environ, name)
    if value is None:
        return None
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be true or false, got {value!r}")


def resolve_background(
    background: bool | None,
    *,
    durable: bool | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    max_queue_size: int | None = None,
    batch_size: int | None = None,
    flush_interval: float | None = None,
    spool_max_bytes: int | None = None,
    replay_interval: float | None = None,
    exit_timeout: float | None = None,
    handle_signals: bool | None = None,
    concurrency: int | None = None,
    sender: str | None = None,
) -> BackgroundConfig | None:
    """The background configuration, or None for a foreground client."""
    if background is None:
        background = env_flag("HUGGINGPLACE_BACKGROUND") or False
    if durable is None:
        durable = env_flag("HUGGINGPLACE_DURABLE") or False
    if not background:
        if durable:
            raise ConfigurationError("durable=True needs background=True (it is a background-delivery option)")
        return None
    values: dict[str, object] = {"durable": bool(durable)}
    if handle_signals is None:
        handle_signals = env_flag("HUGGINGPLACE_HANDLE_SIGNALS")
    if handle_signals is not None:
        values["handle_signals"] = bool(handle_signals)
    if exit_timeout is None:
        exit_timeout = _env(os.environ, "HUGGINGPLACE_EXIT_TIMEOUT")  # type: ignore[assignment]
    for name, value, integer in (
        ("exit_timeout", exit_timeout, False),
        ("concurrency", concurrency, True),
        ("max_queue", max_queue_size, True),
        ("batch_size", batch_size, True),
        ("flush_interval", flush_interval, False),
        ("spool_max_bytes", spool_max_bytes, True),
        ("replay_interval", replay_interval, False),
    ):
        if value is not None:
            values[name] = _number(value, name, "its argument", integer=integer)
    if values.get("concurrency") == 0:
        raise ConfigurationError("concurrency must be at least 1 (requests in flight at once)")
    if spool_dir is not None:
        values["spool_dir"] = os.fspath(spool_dir)
    where = "the sender= argument"
    if sender is None:
        sender, where = _env(os.environ, "HUGGINGPLACE_SENDER"), "HUGGINGPLACE_SENDER"
    if sender is not None:
        if sender not in SENDERS:
            raise ConfigurationError(f"sender must be one of {', '.join(SENDERS)} (from {where}), got {sender!r}")
        values["sender"] = sender
    return BackgroundConfig(**values)  # type: ignore[arg-type]


def resolve_privacy(
    *,
    redact: Any = None,
    capture_content: bool | None = None,
    before_send: Any = None,
    sample_rate: float | None = None,
    max_field_chars: int | None = None,
    max_record_bytes: int | None = None,
    max_metadata_depth: int | None = None,
) -> Any:
    """Privacy options over HUGGINGPLACE_REDACT / _CAPTURE_CONTENT / _SAMPLE_RATE."""
    from ._privacy import PrivacyConfig
    from ._redact import build_redactor

    env = os.environ
    if redact is None:
        redact = _env(env, "HUGGINGPLACE_REDACT") or "secrets"
        if isinstance(redact, str) and "," in redact:
            redact = [part.strip() for part in redact.split(",") if part.strip()]
    build_redactor(redact)  # refuse a bad policy now, not on the first record
    if capture_content is None:
        flag = env_flag("HUGGINGPLACE_CAPTURE_CONTENT")
        capture_content = True if flag is None else flag
    if before_send is not None and not callable(before_send):
        raise ConfigurationError(f"before_send must be a callable taking and returning a dict, got {before_send!r}")
    raw_rate = sample_rate if sample_rate is not None else (_env(env, "HUGGINGPLACE_SAMPLE_RATE") or 1.0)
    rate = _number(raw_rate, "sample_rate", "HUGGINGPLACE_SAMPLE_RATE")
    if rate > 1:
        raise ConfigurationError(
            f"sample_rate must be between 0 and 1 (from sample_rate= or HUGGINGPLACE_SAMPLE_RATE), got {rate}"
        )
    values: dict[str, Any] = {
        "redact": redact, "capture_content": bool(capture_content), "before_send": before_send, "sample_rate": rate,
    }
    for name, value in (
        ("max_field_chars", max_field_chars),
        ("max_record_bytes", max_record_bytes),
        ("max_metadata_depth", max_metadata_depth),
    ):
        if value is not None:
            values[name] = int(_number(value, name, "its argument", integer=True))
    return PrivacyConfig(**values)


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    return value if value not in (None, "") else None


def _number(value: object, name: str, env_name: str, *, integer: bool = False) -> float:
    """A number >= 0 from an argument or an environment string; the error names both."""
    try:
        if isinstance(value, str):
            value = int(value) if integer else float(value)
        number = value
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise TypeError
    except (TypeError, ValueError):
        kind = "a whole number" if integer else "a number"
        raise ConfigurationError(
            f"{name} must be {kind} (from the {name}= argument or {env_name}), got {value!r}"
        ) from None
    if number < 0:
        raise ConfigurationError(f"{name} must be >= 0 (from {name}= or {env_name}), got {value!r}")
    if integer and not isinstance(number, int):
        raise ConfigurationError(f"{name} must be a whole number, got {value!r}")
    return number


def resolve_options(
    *,
    api_key: str | None = None,
    org_id: OrgId | None = None,
    base_url: str | None = None,
    mode: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    environ: Mapping[str, str] | None = None,
    enabled: bool = True,
) -> Options:
    """Merge explicit arguments over the environment and check every value once.

    A disabled client (``enabled=False``) needs no key or org: it never sends.
    """
    env = os.environ if environ is None else environ
    key = api_key if api_key is not None else _env(env, "HUGGINGPLACE_API_KEY")
    if not enabled:
        key = key or "disabled"
        org_id = org_id if org_id is not None else (_env(env, "HUGGINGPLACE_ORG_ID") or "disabled")
    if not key or not isinstance(key, str):
        raise ConfigurationError(
            "No API key: pass api_key=... or set the HUGGINGPLACE_API_KEY environment variable "
            "(`huggingplace serve` prints a local one)."
        )
    if any(c.isspace() for c in key):
        raise ConfigurationError("api_key contains white space; check for a stray newline or quote")
    org: OrgId | None = org_id if org_id is not None else _env(env, "HUGGINGPLACE_ORG_ID")
    if org is None or org == "" or isinstance(org, bool) or not isinstance(org, (str, int)):
        raise ConfigurationError(
            "No organization: pass org_id=... or set the HUGGINGPLACE_ORG_ID environment variable"
            + ("" if org is None else f" (got {org!r}; expected a non-empty string or an integer)")
        )
    url = base_url if base_url is not None else (_env(env, "HUGGINGPLACE_BASE_URL") or DEFAULT_BASE_URL)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"base_url must start with http:// or https:// (from base_url= or HUGGINGPLACE_BASE_URL), got {url!r}"
        )
    chosen_mode = mode if mode is not None else (_env(env, "HUGGINGPLACE_MODE") or "prod")
    if chosen_mode not in MODES:
        raise ConfigurationError(
            f"mode must be 'prod' or 'dev' (from mode= or HUGGINGPLACE_MODE), got {chosen_mode!r}"
        )
    raw_timeout = timeout if timeout is not None else (_env(env, "HUGGINGPLACE_TIMEOUT") or DEFAULT_TIMEOUT)
    seconds = _number(raw_timeout, "timeout", "HUGGINGPLACE_TIMEOUT")
    if seconds == 0:
        raise ConfigurationError("timeout must be > 0 seconds (from timeout= or HUGGINGPLACE_TIMEOUT)")
    raw_retries = max_retries if max_retries is not None else (
        _env(env, "HUGGINGPLACE_MAX_RETRIES") or DEFAULT_MAX_RETRIES
    )
    retries = int(_number(raw_retries, "max_retries", "HUGGINGPLACE_MAX_RETRIES", integer=True))
    return Options(
        api_key=key,
        org_id=org,
        base_url=url.rstrip("/"),
        mode=chosen_mode,
        timeout=float(seconds),
        max_retries=retries,
    )


class ClientOptions(TypedDict, total=False):
    """The keyword arguments both clients take (besides ``transport``); each falls back to its
    ``HUGGINGPLACE_*`` variable (docs/configuration.md)."""

    api_key: str
    org_id: OrgId
    base_url: str
    mode: str
    timeout: float
    max_retries: int
    background: bool
    durable: bool
    spool_dir: str
    max_queue_size: int
    batch_size: int
    flush_interval: float
    spool_max_bytes: int
    replay_interval: float
    enabled: bool
    redact: Any
    capture_content: bool
    before_send: Callable[[dict[str, Any]], Optional[dict[str, Any]]]
    sample_rate: float
    max_field_chars: int
    max_record_bytes: int
    max_metadata_depth: int
    exit_timeout: float
    handle_signals: bool
    concurrency: int
    sender: Literal["thread", "process"]
