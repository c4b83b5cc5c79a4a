"""Flask: ``hp = init_app(app)`` (or ``init_app(app, hp)``) keeps one background client on the
app, built from ``app.config`` (``HUGGINGPLACE_API_KEY`` ...) over the environment."""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["init_app", "client"]

_KEYS = {"HUGGINGPLACE_API_KEY": "api_key", "HUGGINGPLACE_ORG_ID": "org_id", "HUGGINGPLACE_BASE_URL": "base_url"}


def init_app(app: Any, hp: Optional[Any] = None, **options: Any) -> Any:
    """Attach a client to ``app.extensions["huggingplace"]`` and return it. A client built here
    is a background one; delivery at exit needs nothing more (gunicorn's workers leave through
    ``sys.exit``, so the SDK's exit hook runs)."""
    if hp is None:
        from .._client import HuggingPlace

        settings = {name: app.config[key] for key, name in _KEYS.items() if app.config.get(key)}
        hp = HuggingPlace(**{"background": True, **settings, **options})
    app.extensions["huggingplace"] = hp
    return hp


def client(app: Any) -> Any:
    """The client ``init_app`` attached to ``app``."""
    return app.extensions["huggingplace"]
