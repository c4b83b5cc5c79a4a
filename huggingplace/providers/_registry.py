"""The provider registry: built-in adapters, plus third-party ones from the entry-point group
``huggingplace.providers`` (loaded once, lazily, under a lock)."""

from __future__ import annotations

import logging
import threading
from typing import Any, Optional

from ._anthropic import Messages
from ._base import Adapter, Normalized, as_dict
from ._openai import ChatCompletions, OpenAICompatible, Responses
from ._others import BedrockConverse, Cohere, Gemini, Ollama

__all__ = ["Registry", "registry", "adapt", "register"]

logger = logging.getLogger("huggingplace")
ENTRY_POINT_GROUP = "huggingplace.providers"


class Registry:
    """Adapters by unique name, tried in order: plugins, the specific built-ins, then the
    OpenAI-compatible fallback."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._builtin: list[Adapter] = [
            Messages(), Responses(), ChatCompletions(), Gemini(), BedrockConverse(), Cohere(), Ollama(),
        ]
        self._fallback: list[Adapter] = [OpenAICompatible()]
        self._plugins: list[Adapter] = []
        self._sources: dict[str, str] = {a.name: "built-in" for a in self._builtin + self._fallback}
        self._loaded = False

    def register(self, adapter: Adapter, *, source: str = "register()") -> None:
        """Add an adapter; a name already taken is an error, never a silent overwrite."""
        from .._exceptions import ConfigurationError

        name = getattr(adapter, "name", None)
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"a provider adapter needs a non-empty `name`, got {adapter!r}")
        if not callable(getattr(adapter, "matches", None)) or not callable(getattr(adapter, "normalize", None)):
            raise ConfigurationError(f"provider adapter {name!r} needs matches(data) and normalize(data)")
        with self._lock:
            if name in self._sources:
                raise ConfigurationError(
                    f"a provider adapter named {name!r} is already registered (from {self._sources[name]})"
                )
            self._sources[name] = source
            self._plugins.append(adapter)

    def _load_plugins(self) -> None:
        with self._lock:
            done, self._loaded = self._loaded, True
        if done:
            return
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = ep.load()
                adapter = loaded() if isinstance(loaded, type) else loaded
            except Exception as exc:  # a broken plugin must not break logging
                logger.error("provider plugin %r could not be loaded: %r", ep.name, exc)
                continue
            self.register(adapter, source=f"entry point {ep.value}")

    def adapters(self) -> list[tuple[str, str]]:
        """``(name, source)`` of every adapter, in the order they are tried."""
        self._load_plugins()
        return [(a.name, self._sources[a.name]) for a in self._plugins + self._builtin + self._fallback]

    def find(self, data: Any) -> Optional[Adapter]:
        self._load_plugins()
        if not isinstance(data, dict):
            return None
        for adapter in self._plugins + self._builtin + self._fallback:
            try:
                if adapter.matches(data):
                    return adapter
            except Exception:
                continue
        return None

    def adapt(self, response: Any) -> Normalized:
        """A provider response (object or dict) or a plain string, normalized; LookupError if
        no adapter recognises it."""
        if isinstance(response, str):
            return Normalized(text=response)
        if isinstance(response, Normalized):
            return response
        data = as_dict(response)
        adapter = self.find(data)
        if adapter is None:
            raise LookupError(type(response).__name__)
        return adapter.normalize(data)


registry = Registry()
adapt = registry.adapt
register = registry.register
