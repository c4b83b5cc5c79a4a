"""``HuggingPlace`` and ``AsyncHuggingPlace``: thin shells over one shared base.

The base builds and validates records, requests and retry policies (all pure); each shell
only moves bytes (``requests`` or ``aiohttp``) and sleeps the way its world sleeps.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable, ClassVar, Mapping, Optional, TypeVar, Union, overload

import attrs

from ._background import FlushResult, Pipeline
from ._config import ClientOptions, Options, OrgId, env_flag, resolve_background, resolve_options, resolve_privacy
from ._context import Context
from ._exceptions import APIError, HuggingPlaceError, ValidationError
from ._mapping import step_as_log
from ._models import LogRecord, LogResult
from ._privacy import Processor
from ._recorder import Accepted, Recorder
from ._retry import RetryPolicy
from ._session import Session, Trace, new_session_id
from ._stats import Stats, StatsSnapshot
from ._wire import Request, parse_response, request_for_body, to_payload
from .transports.base import AsyncTransport, Transport

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Unpack

__all__ = ["HuggingPlace", "AsyncHuggingPlace"]

Client = TypeVar("Client")

logger = logging.getLogger("huggingplace")

Fields = dict[str, tuple[str, Any]]


class _BaseClient:
    """Everything both clients decide without I/O: options, records, requests, retry policy."""

    _is_async: ClassVar[bool]

    def __init__(
        self,
        *,
        api_key: Optional[str] = None,
        org_id: Optional[OrgId] = None,
        base_url: Optional[str] = None,
        mode: Optional[str] = None,
        timeout: Optional[float] = None,
        max_retries: Optional[int] = None,
        background: Optional[bool] = None,
        durable: Optional[bool] = None,
        spool_dir: Optional[str] = None,
        max_queue_size: Optional[int] = None,
        batch_size: Optional[int] = None,
        flush_interval: Optional[float] = None,
        spool_max_bytes: Optional[int] = None,
        replay_interval: Optional[float] = None,
        enabled: Optional[bool] = None,
        redact: Any = None,
        capture_content: Optional[bool] = None,
        before_send: Optional[Callable[[dict[str, Any]], Optional[dict[str, Any]]]] = None,
        sample_rate: Optional[float] = None,
        max_field_chars: Optional[int] = None,
        max_record_bytes: Optional[int] = None,
        max_metadata_depth: Optional[int] = None,
        exit_timeout: Optional[float] = None,
        handle_signals: Optional[bool] = None,
        concurrency: Optional[int] = None,
        sender: Optional[str] = None,
        transport: Any = None,
    ) -> None:
        if enabled is None:
            flag = env_flag("HUGGINGPLACE_ENABLED")
            enabled = True if flag is None else flag
        self._enabled = bool(enabled)
        self._options = resolve_options(
            api_key=api_key, org_id=org_id, base_url=base_url, mode=mode, timeout=timeout, max_retries=max_retries,
            enabled=self._enabled,
        )
        privacy = resolve_privacy(
            redact=redact, capture_content=capture_content, before_send=before_send, sample_rate=sample_rate,
            max_field_chars=max_field_chars, max_record_bytes=max_record_bytes, max_metadata_depth=max_metadata_depth,
        )
        if not self._enabled:
            background = False
            durable = False
        background_config = resolve_background(
            background, durable=durable, spool_dir=spool_dir, max_queue_size=max_queue_size, batch_size=batch_size,
            flush_interval=flush_interval, spool_max_bytes=spool_max_bytes, replay_interval=replay_interval,
            exit_timeout=exit_timeout, handle_signals=handle_signals, concurrency=concurrency, sender=sender,
        )
        self._policy = RetryPolicy(
            max_retries=self._options.max_retries,
            initial=self._options.backoff_initial,
            maximum=self._options.backoff_max,
            max_retry_after=self._options.max_retry_after,
        )
        self._stats = Stats()
        self._closed = False
        self._processor = Processor(privacy, self._stats)
        self._pipeline: Optional[Pipeline] = (
            Pipeline(self._options, self._policy, self._stats, background_config, self._processor, transport)
            if background_config
            else None
        )
        self._recorder = Recorder(
            enabled=self._enabled, is_async=self._is_async, org_id=str(self._options.org_id), stats=self._stats,
            processor=self._processor, pipeline=self._pipeline, log=self._log_accepted, send=self._log_record,
        )

    def __repr__(self) -> str:
        o = self._options
        return f"{type(self).__name__}(base_url={o.base_url!r}, org_id={o.org_id!r}, mode={o.mode!r})"

    @property
    def options(self) -> Options:
        """The resolved configuration (its ``repr`` hides the API key)."""
        return self._options

    def stats(self) -> StatsSnapshot:
        """Counters of what happened to every record this client was given; in background mode
        also how many records wait in the spool (``on_disk``) and since when."""
        snap = self._stats.snapshot()
        if self._pipeline is None:
            return snap
        on_disk, since = self._pipeline.spool.waiting()
        return attrs.evolve(snap, queued=self._pipeline.batcher.accepted, on_disk=on_disk, on_disk_since=since)

    @property
    def background(self) -> bool:
        """True when ``log()`` only queues and a worker thread delivers."""
        return self._pipeline is not None

    def _flush_result(self) -> FlushResult:
        snap = self._stats.snapshot()  # foreground: every log() already finished
        return FlushResult(sent=snap.sent, spooled=snap.spooled, pending=0, dropped=snap.dropped_total,
                           rejected=snap.rejected)

    # ---- foreground delivery (pure parts) ----------------------------------------------
    def _request(self, record: LogRecord) -> Optional[Request]:
        """The request for a record after privacy processing; None when before_send dropped it."""
        if self._closed:
            raise HuggingPlaceError(f"this {type(self).__name__} is closed; create a new client to log")
        body = self._processor.body(to_payload(record, self._options))
        return None if body is None else request_for_body(body, record.event_id, self._options)

    def _answer(self, response: Any, request: Request) -> LogResult:
        result = parse_response(response, request, api_key=self._options.api_key)
        self._stats.add("sent")
        return result

    def _before_sleep(self, state: Any) -> None:
        self._stats.add("retried")
        exc = state.outcome.exception() if state.outcome is not None else None
        logger.info("retrying a record (attempt %d failed: %s)", state.attempt_number, exc)

    def _count_failure(self, exc: APIError) -> None:
        self._stats.add("rejected" if isinstance(exc, ValidationError) else "failed")

    # ---- sessions and traces -----------------------------------------------------------
    def start_session(
        self, session_id: Optional[str] = None, *args: Mapping[str, Any], **defaults: Any
    ) -> Session[Any]:
        """A session whose id and defaults (any ``log()`` field) go into every record it logs.

        ``session_id`` defaults to a new random id.
        """
        if session_id is None:
            session_id = new_session_id()
        if not isinstance(session_id, str) or not session_id:
            raise ValidationError(f"session_id must be a non-empty string, got {session_id!r}", field="session_id")
        if not args and not defaults:
            return Session(self._recorder, session_id)
        fields = self._recorder.normalize(args, defaults, where="start_session()")
        fields.pop("session_id", None)
        return Session(self._recorder, session_id, fields)

    @overload
    def trace(self, name: Callable[..., Any], /) -> Any: ...

    @overload
    def trace(self, name: Optional[str] = None, /, *, prompt_arg: Optional[str] = None, **fields: Any) -> Trace: ...

    def trace(
        self, name: Union[str, Callable[..., Any], None] = None, /, *, prompt_arg: Optional[str] = None, **fields: Any
    ) -> Any:
        """Time a block (``with``) or every call of a function (decorator) as one record."""
        if callable(name):
            func = name
            return Trace(self._recorder, getattr(func, "__qualname__", "trace"), {})(func)
        given = self._recorder.normalize((), fields, where="trace()")
        return Trace(self._recorder, name or "trace", given, prompt_arg=prompt_arg)

    def context(
        self, *args: Mapping[str, Any], track: Optional[bool] = None, **fields: Any
    ) -> Context:
        """Fields every record inside the block carries (any ``log()`` field), or
        ``track=False`` to log nothing inside it. Nests; correct across threads and asyncio tasks.
        An enclosing session's defaults and the record's own fields win over it."""
        return Context(self._recorder.normalize(args, fields, where="context()"), track)

    def wrap(self, client: Client) -> Client:
        """A drop-in OpenAI / AsyncOpenAI / AzureOpenAI / Anthropic / AsyncAnthropic client whose
        calls are each logged (see docs/providers/). Typed as the client it was given:
        ``isinstance(hp.wrap(OpenAI()), OpenAI)`` holds at run time too."""
        from ._wrap import wrap

        wrapped: Client = wrap(self._recorder, client)
        return wrapped

    # ---- implemented by each shell -----------------------------------------------------
    def _log_record(self, record: Any) -> Any:
        raise NotImplementedError

    def _log_accepted(self, accepted: Any) -> Any:
        """What log() returns for a ``Recorder.accept`` result."""
        raise NotImplementedError


class HuggingPlace(_BaseClient):
    """The synchronous client, on one pooled ``requests.Session``.

    Options (keyword-only; each falls back to an environment variable, explicit arguments win):

    - ``api_key``: ``HUGGINGPLACE_API_KEY`` (required)
    - ``org_id``: ``HUGGINGPLACE_ORG_ID`` (required; a string or an integer)
    - ``base_url``: ``HUGGINGPLACE_BASE_URL``, default ``https://api.huggingplace.com``
    - ``mode``: ``HUGGINGPLACE_MODE``, ``"prod"`` (default) or ``"dev"``
    - ``timeout``: ``HUGGINGPLACE_TIMEOUT``, seconds per attempt, default 10
    - ``max_retries``: ``HUGGINGPLACE_MAX_RETRIES``, default 3
    - ``transport``: anything with ``send(request, timeout=)`` and ``close()``
    - ``background``, ``durable``, ``spool_dir`` and queue bounds: see docs/background.md
    - ``enabled``, ``redact``, ``capture_content``, ``before_send``, ``sample_rate`` and size caps:
      see docs/privacy.md
    """

    _is_async = False

    def __init__(self, *, transport: Optional[Transport] = None, **options: Unpack[ClientOptions]) -> None:
        super().__init__(transport=transport, **options)
        self._owns_transport = transport is None  # ours to close; a transport you pass stays yours
        if transport is None:
            from .transports.http import RequestsTransport

            transport = RequestsTransport()
        self._transport: Transport = transport

    if TYPE_CHECKING:  # what the session's log() gives, for type checkers (the base does the work)

        def start_session(
            self, session_id: Optional[str] = None, *args: Mapping[str, Any], **defaults: Any
        ) -> Session[LogResult]: ...

    def log(self, *args: Mapping[str, Any], **fields: Any) -> LogResult:
        """Validate and send one record; returns its :class:`LogResult` once stored.

        Raises :class:`ValidationError` before any network call for bad input, and an
        :class:`APIError` subclass when the endpoint did not store it after the retries.
        """
        return self._log_accepted(self._recorder.accept(args, fields))

    def log_step(self, step: Mapping[str, Any], /, **fields: Any) -> LogResult:
        """Log one step as its own record, as the public SDKs' ``log_step`` does: the step's
        ``user_question`` and ``prompt_response`` become the prompt and response."""
        return self.log(step_as_log(step), **fields)

    def _log_accepted(self, accepted: Any) -> LogResult:
        return accepted if isinstance(accepted, LogResult) else self._log_record(accepted)

    def _log_record(self, record: Accepted) -> LogResult:
        if self._pipeline is not None:
            return self._recorder.enqueue(record)
        assert isinstance(record, LogRecord)
        request = self._request(record)
        if request is None:
            return LogResult(event_id=record.event_id, dropped="before_send")
        return self._send(request)

    def _send(self, request: Request) -> LogResult:
        try:
            for attempt in self._policy.retrying(before_sleep=self._before_sleep):
                with attempt:
                    return self._answer(self._transport.send(request, timeout=self._options.timeout), request)
        except APIError as exc:
            self._count_failure(exc)
            raise
        raise AssertionError("unreachable: tenacity re-raises")  # pragma: no cover

    def flush(self, timeout: float = 5.0) -> FlushResult:
        """Background mode: send what is queued, waiting at most ``timeout`` seconds.
        In the foreground every log() already finished, so this returns at once."""
        return self._pipeline.flush(timeout) if self._pipeline is not None else self._flush_result()

    def close(self, timeout: Optional[float] = None) -> FlushResult:
        """Release connections. Background mode: send for up to ``timeout`` seconds (default:
        the exit deadline, ``exit_timeout``) and spool whatever is left, so nothing is lost.
        Idempotent: a second call returns the first one's result at once."""
        result = self._pipeline.close(timeout) if self._pipeline is not None else self._flush_result()
        if not self._closed:
            self._closed = True
            if self._owns_transport:
                self._transport.close()
        return result

    def __enter__(self) -> HuggingPlace:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class AsyncHuggingPlace(_BaseClient):
    """The asyncio client, on one ``aiohttp.ClientSession``; never blocks the event loop.

    Takes the same options as :class:`HuggingPlace`; ``transport`` needs ``send_async`` and
    ``aclose``.
    """

    _is_async = True

    def __init__(self, *, transport: Optional[AsyncTransport] = None, **options: Unpack[ClientOptions]) -> None:
        super().__init__(transport=transport, **options)
        self._owns_transport = transport is None  # ours to close; a transport you pass stays yours
        if transport is None:
            from .transports.aio import AiohttpTransport

            transport = AiohttpTransport()
        self._transport: AsyncTransport = transport

    if TYPE_CHECKING:

        def start_session(
            self, session_id: Optional[str] = None, *args: Mapping[str, Any], **defaults: Any
        ) -> Session[Awaitable[LogResult]]: ...

    async def log(self, *args: Mapping[str, Any], **fields: Any) -> LogResult:
        """Validate and send one record; the async twin of :meth:`HuggingPlace.log`."""
        return await self._log_accepted(self._recorder.accept(args, fields))

    async def log_step(self, step: Mapping[str, Any], /, **fields: Any) -> LogResult:
        """Log one step as its own record; the async twin of :meth:`HuggingPlace.log_step`."""
        return await self.log(step_as_log(step), **fields)

    async def _log_accepted(self, accepted: Any) -> LogResult:
        return accepted if isinstance(accepted, LogResult) else await self._log_record(accepted)

    async def _log_record(self, record: Accepted) -> LogResult:
        if self._pipeline is not None:
            return self._recorder.enqueue(record)
        assert isinstance(record, LogRecord)
        request = self._request(record)
        if request is None:
            return LogResult(event_id=record.event_id, dropped="before_send")
        return await self._send(request)

    async def _send(self, request: Request) -> LogResult:
        import asyncio  # loaded already: this runs on an event loop

        try:
            async for attempt in self._policy.async_retrying(before_sleep=self._before_sleep, sleep=asyncio.sleep):
                with attempt:
                    response = await self._transport.send_async(request, timeout=self._options.timeout)
                    return self._answer(response, request)
        except APIError as exc:
            self._count_failure(exc)
            raise
        raise AssertionError("unreachable: tenacity re-raises")  # pragma: no cover

    async def flush(self, timeout: float = 5.0) -> FlushResult:
        """The async twin of :meth:`HuggingPlace.flush`; waits in a thread, never on the loop."""
        import asyncio

        if self._pipeline is None:
            return self._flush_result()
        return await asyncio.to_thread(self._pipeline.flush, timeout)

    async def close(self, timeout: Optional[float] = None) -> FlushResult:
        """Close the aiohttp session; background mode as :meth:`HuggingPlace.close`. Idempotent."""
        import asyncio

        if self._pipeline is not None:
            result = await asyncio.to_thread(self._pipeline.close, timeout)
        else:
            result = self._flush_result()
        if not self._closed:
            self._closed = True
            if self._owns_transport:
                await self._transport.aclose()
        return result

    async def __aenter__(self) -> AsyncHuggingPlace:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()
