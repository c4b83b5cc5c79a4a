"""``hp.wrap(client)``: a drop-in OpenAI / Anthropic client that logs every call.

The proxy forwards everything to the real client. Only the calls in ``TRACKED`` are timed and
logged; every other attribute, ``with_raw_response`` and un-tracked methods are the original
ones. The provider's own arguments reach it untouched (the one addition: OpenAI streams are asked
for usage when the caller did not say, and that extra chunk is hidden from them). Logging never
changes what a call returns or raises.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Callable, Optional

from ._context import current_scope
from ._exceptions import ValidationError
from ._internal import swallow
from ._mapping import as_messages, message_text
from ._models import ErrorInfo, LogResult
from ._session import current_session
from ._threading import ResponseChains, conversation_id
from .providers import Normalized, adapt, as_dict
from .providers._anthropic import MessagesStream
from .providers._base import dig
from .providers._openai import ChatStream, ResponsesStream

if TYPE_CHECKING:  # pragma: no cover
    from ._recorder import Accepted, Recorder

__all__ = ["wrap"]

logger = logging.getLogger("huggingplace")

# path from the client -> what kind of call it is
TRACKED: dict[tuple[str, ...], str] = {
    ("chat", "completions", "create"): "chat",
    ("chat", "completions", "parse"): "chat",
    ("beta", "chat", "completions", "parse"): "chat",
    ("responses", "create"): "responses",
    ("responses", "parse"): "responses",
    ("messages", "create"): "anthropic",
    ("messages", "stream"): "anthropic_helper",
}
_PREFIXES = {path[:i] for path in TRACKED for i in range(1, len(path))}
_chains = ResponseChains()


def _kind_of(client: Any) -> str:
    if hasattr(client, "chat") and hasattr(client, "responses"):
        return "openai"
    if hasattr(client, "messages") and callable(getattr(getattr(client, "messages", None), "create", None)):
        return "anthropic"
    from ._exceptions import ConfigurationError

    raise ConfigurationError(
        f"wrap() takes an OpenAI, AsyncOpenAI, AzureOpenAI, Anthropic or AsyncAnthropic client, "
        f"got {type(client).__name__}"
    )


def _is_async_client(client: Any, kind: str) -> bool:
    method = client.chat.completions.create if kind == "openai" else client.messages.create
    return inspect.iscoroutinefunction(inspect.unwrap(method)) or type(client).__name__.startswith("Async")


def wrap(recorder: Recorder, client: Any) -> Any:
    kind = _kind_of(client)
    is_async = _is_async_client(client, kind)
    if recorder.is_async and not is_async and not recorder.background:
        raise TypeError(
            "AsyncHuggingPlace.wrap() needs an async provider client (AsyncOpenAI, AsyncAnthropic); "
            "use HuggingPlace for sync clients, or AsyncHuggingPlace(background=True)"
        )
    return _Proxy(client, _Tracker(recorder, is_async, kind), ())


class _Proxy:
    """Forwards every attribute to the real client or resource, tracking only ``TRACKED``."""

    __slots__ = ("_hp_target", "_hp_tracker", "_hp_path")

    def __init__(self, target: Any, tracker: _Tracker, path: tuple[str, ...]) -> None:
        object.__setattr__(self, "_hp_target", target)
        object.__setattr__(self, "_hp_tracker", tracker)
        object.__setattr__(self, "_hp_path", path)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._hp_target, name)
        path = (*self._hp_path, name)
        if name == "with_options" and callable(value):
            tracker = self._hp_tracker
            return lambda *a, **k: _Proxy(value(*a, **k), tracker, self._hp_path)
        if path in TRACKED and callable(value):
            return self._hp_tracker.wrap_call(value, TRACKED[path])
        if path in _PREFIXES:
            return _Proxy(value, self._hp_tracker, path)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._hp_target, name, value)

    def __dir__(self) -> list[str]:
        return dir(self._hp_target)

    def __repr__(self) -> str:
        return repr(self._hp_target)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance(wrapped, OpenAI) stays true
        return type(self._hp_target)

    def __enter__(self) -> Any:
        self._hp_target.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        return self._hp_target.__exit__(*exc_info)

    async def __aenter__(self) -> Any:
        await self._hp_target.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await self._hp_target.__aexit__(*exc_info)


class _Call:
    """What one tracked call was asked, when it started, and (for a stream) what arrived."""

    def __init__(self, kind: str, kwargs: dict[str, Any]) -> None:
        self.kind = kind
        self.kwargs = kwargs
        self.start_ns = time.perf_counter_ns()
        self.first_token_ns: Optional[int] = None
        self.stream = False
        self.chunks = 0

    def prompt(self) -> tuple[str, list[dict[str, Any]], str]:
        """(system prompt, messages, last user text) from the provider's own arguments."""
        kw = self.kwargs
        system = ""
        raw: Any = kw.get("messages")
        if self.kind == "responses":
            raw = kw.get("input", [])
            system = str(kw.get("instructions") or "")
        elif self.kind.startswith("anthropic"):
            system = message_text(kw.get("system") or "")
        try:
            messages = as_messages("messages", raw if raw is not None else [])
        except ValidationError:  # not chat messages (a prompt we cannot read): logged without one
            messages = []
        if not system:
            system = next((str(m["content"]) for m in messages if m.get("role") in ("system", "developer")), "")
        user = next((str(m["content"]) for m in reversed(messages) if m.get("role") == "user"), "")
        return system, messages, user

    def user(self) -> Optional[str]:
        """The end user the call names: OpenAI's ``user`` / ``safety_identifier``, or
        ``metadata.user_id`` (Anthropic's field, and a common OpenAI ``metadata`` key)."""
        kw = self.kwargs
        for value in (kw.get("user"), kw.get("safety_identifier"), dig(kw.get("metadata"), "user_id")):
            if isinstance(value, str) and value:
                return value
        return None


def _given_user() -> Optional[str]:
    """The user id an enclosing session or context gives (it wins over the call's)."""
    session = current_session()
    scope = current_scope()
    for fields in (session.defaults if session is not None else {}, scope.fields if scope is not None else {}):
        if "user_id" in fields:
            return str(fields["user_id"][1])
    return None


class _Tracker:
    """Turns tracked calls into records for one HuggingPlace client."""

    def __init__(self, recorder: Recorder, is_async: bool, provider: str) -> None:
        self.recorder = recorder
        self.is_async = is_async
        self.provider = provider
        self._orphans: set[asyncio.Task[Any]] = set()

    # ---- deciding ------------------------------------------------------------------------
    @staticmethod
    def tracking() -> bool:
        scope = current_scope()
        return scope is None or scope.track

    def _prepare(self, kind: str, kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Ask OpenAI streams for usage unless the caller chose; say whether to hide that chunk."""
        if kind == "chat" and kwargs.get("stream"):
            options = kwargs.get("stream_options")
            if options is None or (isinstance(options, dict) and "include_usage" not in options):
                return {**kwargs, "stream_options": {**(options or {}), "include_usage": True}}, True
        return kwargs, False

    # ---- building the record --------------------------------------------------------------
    def _record(
        self, call: _Call, result: Optional[Normalized], exc: Optional[BaseException], end: Optional[str] = None
    ) -> Optional[Accepted]:
        """One record in the shape of ``providers.RECORD_FIELDS``; ``end`` says how a stream
        ended (``complete``, ``closed``, ``abandoned`` or ``error``)."""
        system, messages, user = call.prompt()
        fields: dict[str, tuple[str, Any]] = {
            "user_prompt": ("user_prompt", user),
            "response": ("response", result if result is not None else ""),
        }
        requested = call.kwargs.get("model")
        model = (result.model if result else None) or requested
        if model:
            fields["llm_model"] = ("llm_model", str(model))
        llm: dict[str, Any] = {} if result is not None else {"provider": self.provider}
        if requested:
            llm["request_model"] = str(requested)
        if call.stream:
            llm.update(stream=True, chunks=call.chunks, completed=end == "complete", end=end or "complete")
            if call.first_token_ns is not None:
                llm["time_to_first_token_ms"] = round((call.first_token_ns - call.start_ns) / 1e6, 3)
        if exc is not None:
            fields["status"] = ("status", "error")
            fields["error"] = ("error", ErrorInfo.from_exception(exc))
        elif end in ("closed", "abandoned"):
            fields["status"] = ("status", "error")
            fields["error"] = ("error", ErrorInfo(
                type="IncompleteStream",
                message=f"the stream was {end} before its end, after {call.chunks} chunks"))
        metadata: dict[str, Any] = {"llm": llm}
        given_user = _given_user()
        call_user = call.user()
        if call_user is not None and given_user is None:
            fields["user_id"] = ("user_id", call_user)
        thread = self._thread(call, system, messages, result, given_user or call_user)
        if thread is not None:
            fields["session_id"] = ("session_id", thread)
            metadata["session_derived"] = True
        fields["metadata"] = ("metadata", metadata)
        elapsed = (time.perf_counter_ns() - call.start_ns) / 1e6
        accepted = self.recorder.accept((), {}, fields=fields, measured_ms=elapsed)
        if result is not None and call.kind == "responses":
            _chains.remember(result.response_id, thread)
        kept: Optional[Accepted] = None if isinstance(accepted, LogResult) else accepted
        return kept

    def _thread(
        self, call: _Call, system: str, messages: list[dict[str, Any]], result: Optional[Normalized],
        user: Optional[str],
    ) -> Optional[str]:
        """The conversation's id, unless a session or context names one already."""
        if current_session() is not None:
            return None
        scope = current_scope()
        if scope is not None and "session_id" in scope.fields:
            return None
        previous = call.kwargs.get("previous_response_id")
        if call.kind == "responses" and isinstance(previous, str):
            return _chains.lookup(previous)
        return conversation_id(system, messages, result.text if result else "", user=user,
                               org=self.recorder.org_id)

    # ---- delivering, never raising --------------------------------------------------------
    def finish_sync(
        self, call: _Call, result: Optional[Normalized], exc: Optional[BaseException], end: Optional[str] = None
    ) -> None:
        try:
            record = self._record(call, result, exc, end)
            if record is not None:
                self.recorder.hand_on_quietly(record)
        except Exception as error:
            self._swallow(error)

    async def finish_async(
        self, call: _Call, result: Optional[Normalized], exc: Optional[BaseException], end: Optional[str] = None
    ) -> None:
        try:
            record = self._record(call, result, exc, end)
            if record is not None:
                await self.recorder.hand_on_quietly_async(record)
        except Exception as error:
            self._swallow(error)

    def finish_later(self, call: _Call, result: Optional[Normalized], end: str) -> None:
        """From ``__del__`` of an abandoned async stream: no await possible here."""
        if self.recorder.background or not self.recorder.is_async:
            self.finish_sync(call, result, None, end)
            return
        try:
            task = asyncio.get_running_loop().create_task(self.finish_async(call, result, None, end))
        except RuntimeError:
            self.recorder.stats.drop("stream_abandoned_without_loop")
            return
        self._orphans.add(task)
        task.add_done_callback(self._orphans.discard)

    def _swallow(self, error: BaseException) -> None:
        swallow("logging a wrapped call (the call itself was unaffected)", error, stats=self.recorder.stats,
                count="wrapper_error")

    def _normalize(self, raw: Any) -> Optional[Normalized]:
        try:
            return adapt(raw)
        except LookupError:  # a response no adapter knows: logged without its fields
            return None
        except Exception as error:
            self._swallow(error)
            return None

    # ---- the wrapped methods --------------------------------------------------------------
    def wrap_call(self, fn: Callable[..., Any], kind: str) -> Callable[..., Any]:
        if kind == "anthropic_helper":
            return self._wrap_helper(fn)
        if self.is_async:

            async def tracked_async(*args: Any, **kwargs: Any) -> Any:
                if not self.tracking():
                    return await fn(*args, **kwargs)
                sent, strip = self._prepare(kind, kwargs)
                call = _Call(kind, kwargs)
                try:
                    result = await fn(*args, **sent)
                except BaseException as exc:
                    await self.finish_async(call, None, exc)
                    raise
                if _is_stream(result):
                    return _TrackedAsyncStream(result, call, self, _accumulator(kind), strip)
                await self.finish_async(call, self._normalize(result), None)
                return result

            return tracked_async

        def tracked(*args: Any, **kwargs: Any) -> Any:
            if not self.tracking():
                return fn(*args, **kwargs)
            sent, strip = self._prepare(kind, kwargs)
            call = _Call(kind, kwargs)
            try:
                result = fn(*args, **sent)
            except BaseException as exc:
                self.finish_sync(call, None, exc)
                raise
            if _is_stream(result):
                return _TrackedStream(result, call, self, _accumulator(kind), strip)
            self.finish_sync(call, self._normalize(result), None)
            return result

        return tracked

    def _wrap_helper(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def helper(*args: Any, **kwargs: Any) -> Any:
            manager = fn(*args, **kwargs)
            if not self.tracking():
                return manager
            return _TrackedHelper(manager, _Call("anthropic_helper", kwargs), self)

        return helper


def _accumulator(kind: str) -> Any:
    return {"chat": ChatStream, "responses": ResponsesStream}.get(kind, MessagesStream)()


def _is_stream(result: Any) -> bool:
    """OpenAI / Anthropic Stream and AsyncStream objects (iterators of server-sent events)."""
    name = type(result).__name__
    return name in ("Stream", "AsyncStream") or (
        hasattr(result, "__iter__") and hasattr(result, "response") and not hasattr(result, "model_dump")
    )


def _usage_only(chunk: dict[str, Any]) -> bool:
    return not chunk.get("choices") and bool(chunk.get("usage"))


class _Folding:
    """What a tracked stream of either colour shares: folding chunks into one answer, timing
    the first token, and deciding how it ended. Logs once."""

    def __init__(self, source: Any, call: _Call, tracker: _Tracker, acc: Any, strip_usage: bool) -> None:
        call.stream = True
        self._source = source
        self._iter: Any = None
        self._call = call
        self._tracker = tracker
        self._strip = strip_usage
        self._acc = acc
        self._done = False

    def __getattr__(self, name: str) -> Any:  # everything else is the provider's object
        source = self.__dict__.get("_source")
        if source is None:
            raise AttributeError(name)
        return getattr(source, name)

    def _take(self, chunk: Any) -> bool:
        """Accumulate; False when the chunk is our own usage chunk, hidden from the caller."""
        self._call.chunks += 1
        try:
            data = as_dict(chunk)
            if self._acc.add(data) and self._call.first_token_ns is None:
                self._call.first_token_ns = time.perf_counter_ns()
            return not (self._strip and _usage_only(data))
        except Exception as error:  # the chunk still reaches the caller
            self._tracker._swallow(error)
            return True

    def _result(self) -> Optional[Normalized]:
        try:
            return self._acc.result()  # type: ignore[no-any-return]
        except Exception as error:
            self._tracker._swallow(error)
            return None

    def _ending(self, exc: Optional[BaseException], end: str) -> Optional[tuple[Optional[Normalized], str]]:
        """The answer so far and how the stream ended, the first time only. Closed after the
        model's finish reason arrived counts as complete (a caller may stop at it)."""
        if self._done:
            return None
        self._done = True
        result = self._result()
        if exc is not None:
            end = "error"
        elif end != "complete" and result is not None and result.finish_reason:
            end = "complete"
        return result, end

    def _end_sync(self, exc: Optional[BaseException], end: str) -> None:
        ending = self._ending(exc, end)
        if ending is not None:
            self._tracker.finish_sync(self._call, ending[0], exc, ending[1])

    def __del__(self) -> None:
        if not getattr(self, "_done", True):
            try:
                ending = self._ending(None, "abandoned")
                if ending is not None:
                    self._tracker.finish_later(self._call, *ending)
            except Exception as error:  # never raise from a finalizer
                self._tracker._swallow(error)


class _TrackedStream(_Folding):
    """A sync provider stream: every chunk passed through, logged once when it ends, fails, is
    closed, or is garbage-collected half-way."""

    def __iter__(self) -> _TrackedStream:
        return self

    def __next__(self) -> Any:
        if self._iter is None:
            self._iter = iter(self._source)
        while True:
            try:
                chunk = next(self._iter)
            except StopIteration:
                self._end_sync(None, "complete")
                raise
            except BaseException as exc:
                self._end_sync(exc, "error")
                raise
            if self._take(chunk):
                return chunk

    def close(self) -> None:
        try:
            self._source.close()
        finally:
            self._end_sync(None, "closed")

    def __enter__(self) -> _TrackedStream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class _TrackedAsyncStream(_Folding):
    """An async provider stream (``AsyncStream``): ``close()`` is awaited, as the provider's is."""

    async def _end(self, exc: Optional[BaseException], end: str) -> None:
        ending = self._ending(exc, end)
        if ending is not None:
            await self._tracker.finish_async(self._call, ending[0], exc, ending[1])

    def __aiter__(self) -> _TrackedAsyncStream:
        return self

    async def __anext__(self) -> Any:
        if self._iter is None:
            self._iter = self._source.__aiter__()
        while True:
            try:
                chunk = await self._iter.__anext__()
            except StopAsyncIteration:
                await self._end(None, "complete")
                raise
            except BaseException as exc:
                await self._end(exc, "error")
                raise
            if self._take(chunk):
                return chunk

    async def close(self) -> None:
        try:
            await self._source.close()
        finally:
            await self._end(None, "closed")

    aclose = close

    async def __aenter__(self) -> _TrackedAsyncStream:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()


class _RawEvents:
    """Stands in for the ``messages.stream()`` helper's raw event stream (sync or async): each
    event is also folded and timed, so the helper's record has what ``create(stream=True)``'s has."""

    def __init__(self, raw: Any, folding: _Folding) -> None:
        self._raw = raw
        self._folding = folding

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def __iter__(self) -> Iterator[Any]:
        for event in self._raw:
            self._folding._take(event)
            yield event

    async def __aiter__(self) -> AsyncIterator[Any]:
        async for event in self._raw:
            self._folding._take(event)
            yield event


class _TrackedHelper(_Folding):
    """Anthropic's ``messages.stream()`` manager: its events are folded as they arrive (nothing
    extra is read from the network), and the record is logged when the block ends."""

    def __init__(self, manager: Any, call: _Call, tracker: _Tracker) -> None:
        super().__init__(manager, call, tracker, MessagesStream(), False)
        self._done = True  # nothing to log until the block is entered

    def _tap(self, stream: Any) -> Any:
        raw = getattr(stream, "_raw_stream", None)
        if raw is not None:
            try:
                stream._raw_stream = _RawEvents(raw, self)
            except Exception as error:  # a helper that refuses it: logged from the block's end, fewer fields
                self._tracker._swallow(error)
        self._done = False
        return stream

    def __enter__(self) -> Any:
        return self._tap(self._source.__enter__())

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> Any:
        try:
            return self._source.__exit__(exc_type, exc, tb)
        finally:
            self._end_sync(exc, "closed")

    async def __aenter__(self) -> Any:
        return self._tap(await self._source.__aenter__())

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> Any:
        try:
            return await self._source.__aexit__(exc_type, exc, tb)
        finally:
            ending = self._ending(exc, "closed")
            if ending is not None:
                await self._tracker.finish_async(self._call, ending[0], exc, ending[1])
