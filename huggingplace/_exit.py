"""Delivering at process stop, in every host, with no user code.

Hooks are registered when the first background pipeline starts in a process (never at import),
and again in a forked child, whose host may have reset them:

- ``atexit``: close every pipeline within one shared exit deadline. The send path touches no
  thread pool (Python shuts those down before ``atexit`` runs), so this delivers.
- SIGTERM and SIGINT: a handler that chains to the one it found. With the default action there,
  it closes the pipelines (bounded), restores the default and raises the signal again, so the
  process still dies by that signal. With a host's own handler there (uvicorn, gunicorn, Celery),
  it flushes (bounded), then calls that handler, last, so the host's graceful stop goes on as
  before. An ignored signal, or a handler installed from C, is left alone.
- Worker processes of ``multiprocessing`` and ``concurrent.futures`` leave through ``os._exit``,
  which skips ``atexit``: a ``multiprocessing.util.Finalize`` closes the pipelines there. A Celery
  prefork child does the same from ``worker_process_shutdown``.
- After ``fork()``, the child gets fresh queues and worker; the parent's records stay the
  parent's, and the child's hooks are installed again on its first use.
- A signal whose Python handler CPython never runs (see ``_Watch``) is sent again to the main
  thread, so a process that the default action would have ended does not live on.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Optional

from ._internal import swallow

if TYPE_CHECKING:  # pragma: no cover
    from ._background import Pipeline

__all__ = [
    "register", "forget", "started", "close_all", "flush_all", "install_signal_handlers",
    "keep_signals_off_this_thread",
]

logger = logging.getLogger("huggingplace")

_live: weakref.WeakSet[Pipeline] = weakref.WeakSet()
_inherited: list[Any] = []  # a forked child's copies of its parent's workers, kept from __del__
_hooked_pid: Optional[int] = None
_atexit_done = False
_fork_done = False
_MARK = "_huggingplace_chained"
_PREVIOUS = "_huggingplace_previous"  # on our handler: the one it chains to


def register(pipeline: Pipeline) -> None:
    """A pipeline is built. Signal handlers go in now if this is the main thread: a server that
    imports the app inside its own signal handling (uvicorn) is then chained to."""
    _live.add(pipeline)
    if pipeline.config.handle_signals:
        install_signal_handlers()


def forget(pipeline: Pipeline) -> None:
    _live.discard(pipeline)


def _mine() -> list[Pipeline]:
    return [p for p in list(_live) if not p.closed]


_busy = 0  # close_all / flush_all calls under way on the main thread
_deferred: list[tuple[int, Any]] = []  # signals that arrived meanwhile, handled when they end


def _enter() -> bool:
    global _busy
    main = threading.current_thread() is threading.main_thread()
    if main:
        _busy += 1
    return main


def _leave(main: bool) -> None:
    """The outermost close or flush is over: now act on the signals it held back."""
    global _busy
    if not main:
        return
    _busy -= 1
    while _busy == 0 and _deferred:
        sig, frame = _deferred.pop(0)
        handler = signal.getsignal(sig)
        if callable(handler):
            handler(sig, frame)
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), sig)


def _each(action: str, timeout: Optional[float]) -> None:
    """``close`` or ``flush`` every pipeline of this process within one shared deadline."""
    pipelines = _mine()
    if not pipelines:
        return
    main = _enter()
    try:
        budget = max(p.config.exit_timeout for p in pipelines) if timeout is None else timeout
        deadline = time.monotonic() + budget
        for pipeline in pipelines:
            try:
                getattr(pipeline, action)(max(0.0, deadline - time.monotonic()))
            except Exception as exc:  # never raise at exit or in a signal handler
                swallow(f"{action} at exit", exc, stats=pipeline.stats)
    finally:
        _leave(main)


def close_all(timeout: Optional[float] = None) -> None:
    """Close every background pipeline of this process within one shared deadline."""
    _each("close", timeout)


def flush_all(timeout: Optional[float] = None) -> None:
    """Flush every background pipeline of this process within one shared deadline."""
    _each("flush", timeout)


# ---- installing ---------------------------------------------------------------------------------
def started(pipeline: Pipeline) -> None:
    """A pipeline's worker starts: make sure this process's hooks are in place (once per pid)."""
    global _hooked_pid, _atexit_done
    pid = os.getpid()
    if _hooked_pid == pid:
        return
    _hooked_pid = pid
    if not _atexit_done:
        atexit.register(close_all)
        _atexit_done = True
    _hook_fork()
    if pipeline.config.handle_signals and not install_signal_handlers():
        _install_from_worker_thread()
    _process_hooks()


def _hook_fork() -> None:
    global _fork_done
    if not _fork_done and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_child)
        _fork_done = True


def _install_from_worker_thread() -> None:
    """First use on a thread of an anyio pool (a sync FastAPI / Starlette endpoint): ask the
    event loop, which runs on the main thread, to install the handlers."""
    if "anyio" not in sys.modules or threading.current_thread() is threading.main_thread():
        return
    try:
        from anyio import from_thread

        from_thread.run_sync(install_signal_handlers)
    except RuntimeError:  # not an anyio worker thread: nothing to ask
        return
    except Exception as exc:
        swallow("installing signal handlers from a worker thread", exc)


def _process_hooks() -> None:
    """Worker processes that exit through ``os._exit`` (no ``atexit``)."""
    mp = sys.modules.get("multiprocessing")
    if mp is not None:
        try:
            if mp.current_process().name != "MainProcess":
                import multiprocessing.util

                multiprocessing.util.Finalize(None, close_all, exitpriority=10)
        except Exception as exc:  # pragma: no cover
            swallow("multiprocessing hook", exc)
    if "celery" in sys.modules:
        try:
            from celery import signals  # type: ignore[import-untyped]

            signals.worker_process_shutdown.connect(_celery_shutdown, weak=False)
        except Exception as exc:  # pragma: no cover
            swallow("celery hook", exc)


def _celery_shutdown(*args: Any, **kwargs: Any) -> None:
    close_all()


def _after_fork_child() -> None:
    global _hooked_pid
    _hooked_pid = None
    _entered.clear()
    _Watch.let_go()  # before anything else: the parent's watcher must not read the child's signals
    for pipeline in list(_live):
        old = pipeline.after_fork()
        if old is not None:
            _inherited.append(old)


def keep_signals_off_this_thread() -> None:
    """Block SIGTERM and SIGINT in an SDK thread, so that the kernel delivers them to the main
    thread: Python runs signal handlers only there, and a main thread blocked in a C wait (a
    ``multiprocessing`` worker waiting on its task queue) wakes only for a signal delivered to
    it. Without this a pool's terminate() could hang: the signal went to our thread and the
    worker never ran the handler."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})


def install_signal_handlers(signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> bool:
    """Chain a bounded flush onto SIGTERM and SIGINT (see the module docstring). Only from the
    main thread and not during interpreter shutdown; never twice; returns whether it did."""
    if threading.current_thread() is not threading.main_thread() or sys.is_finalizing():
        return False
    done = any(getattr(signal.getsignal(s), _MARK, False) for s in signals)
    for signum in signals:
        previous = signal.getsignal(signum)
        if previous is None or previous == signal.SIG_IGN or getattr(previous, _MARK, False):
            continue
        try:
            signal.signal(signum, _chained(signum, previous))
            done = True
        except (ValueError, OSError):  # pragma: no cover - not the main interpreter
            continue
    if any(_ends_process(signal.getsignal(s)) for s in signals):
        _Watch.ensure()
    return done


def _ends_process(handler: Any) -> bool:
    """Our handler, chained onto the default action: it ends the process once it has closed."""
    return bool(getattr(handler, _MARK, False)) and getattr(handler, _PREVIOUS, None) == signal.SIG_DFL


_handling: set[int] = set()  # signals whose handling is under way in this process


def _chained(signum: int, previous: Any) -> Callable[[int, Any], None]:
    def handler(sig: int, frame: Any) -> None:
        _entered.add(sig)
        if sig in _handling:  # the same signal again, while we handle it: the first one is
            return  # already bounded by the exit deadline and ends as the platform expects
        if _busy:  # it interrupts our own close or flush (an exit path): act once that is done
            _deferred.append((sig, frame))
            return
        _handling.add(sig)
        try:
            if previous == signal.SIG_DFL:  # the process ends here: close, then die by the signal
                close_all()
                signal.signal(sig, signal.SIG_DFL)
                os.kill(os.getpid(), sig)
                return
            flush_all()  # the host stops gracefully: send what we hold, then let it
            for pipeline in _mine():  # records logged during the host's graceful stop go out at once
                pipeline.drain_now()
        finally:
            _handling.discard(sig)
        if callable(previous):
            previous(sig, frame)

    setattr(handler, _MARK, True)
    setattr(handler, _PREVIOUS, previous)
    return handler


# ---- a signal CPython leaves unhandled ----------------------------------------------------------
_entered: set[int] = set()  # signals whose handler (ours) has started in this process


class _Watch:
    """Sends a signal again to the main thread when CPython has not run our handler for it.

    CPython records a signal in its C handler and runs the Python handler later, on the main
    thread, when its eval loop looks. On 3.11 it can fail to look: the "something to do" flag
    may be recomputed by another thread (ours, sending, holding the GIL), which cannot run
    handlers and leaves the signal out; a main thread that then blocks in a C wait with no
    timeout (a ``multiprocessing`` pool worker waiting for its next task) never runs it. The
    default action would have ended the process; with our handler it lived on, and
    ``Pool.terminate()`` waited for it forever (one pool run in 15 to 40).

    The C handler also writes the signal's number to the wakeup fd, from whatever thread it
    runs on: this thread reads it, and if our handler has not started by ``GRACE``, sends the
    signal again to the main thread, whose wait then returns EINTR and runs the handler. Only
    for signals whose handler ends the process (ours over the default action): a host's own
    handler is never called twice.
    """

    GRACE = 0.2  #: how long the main thread has to start the handler before it is sent again
    TRIES = 5
    current: Optional[_Watch] = None

    def __init__(self, reader: socket.socket, writer: socket.socket) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    def ensure(cls) -> None:
        """From the main thread: watch, unless this process has a watch or another wakeup fd
        (an asyncio loop's signal handlers), which is left in place."""
        if cls.current is not None or not hasattr(signal, "pthread_kill") or sys.is_finalizing():
            return
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)  # main thread: checked
        if previous != -1:  # someone else's: put it back
            signal.set_wakeup_fd(previous)
            reader.close()
            writer.close()
            return
        _hook_fork()  # a forked child lets go of it, even if no pipeline started here
        watch = cls.current = cls(reader, writer)
        try:
            threading.Thread(target=watch._run, name="huggingplace-signal-watch", daemon=True).start()
        except RuntimeError:  # no new threads at interpreter shutdown (3.12): no watch, as before
            cls.let_go()

    @classmethod
    def let_go(cls) -> None:
        """In a forked child: the parent's watch is the parent's (its thread did not come along)."""
        watch, cls.current = cls.current, None
        if watch is None:
            return
        try:
            previous = signal.set_wakeup_fd(-1)
            if previous not in (-1, watch.writer.fileno()):  # replaced since: keep that one
                signal.set_wakeup_fd(previous)
        except ValueError as exc:  # pragma: no cover - after fork the forking thread is the main one
            swallow("letting go of the signal wakeup fd", exc)
        watch.reader.close()
        watch.writer.close()

    def _run(self) -> None:
        keep_signals_off_this_thread()
        tries: dict[int, int] = {}
        while True:
            try:
                data = self.reader.recv(64)
            except OSError as exc:  # pragma: no cover - a socketpair nobody else reads or closes
                swallow("signal watch", exc)
                return
            if not data:  # pragma: no cover - nothing closes the other end
                return
            for sig in set(data):
                if tries.get(sig, 0) < self.TRIES and self._missed(sig):
                    tries[sig] = tries.get(sig, 0) + 1
                    try:
                        signal.pthread_kill(threading.main_thread().ident or 0, sig)
                    except OSError as exc:  # pragma: no cover - the main thread runs while we do
                        swallow("resending a signal to the main thread", exc)
                        return

    @classmethod
    def _missed(cls, sig: int) -> bool:
        deadline = time.monotonic() + cls.GRACE
        while sig not in _entered and time.monotonic() < deadline:
            time.sleep(0.01)
        return sig not in _entered and _ends_process(signal.getsignal(sig))
