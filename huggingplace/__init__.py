"""huggingplace: log every LLM call to HuggingPlace: prompt, answer, model, tokens, timing.

    from huggingplace import HuggingPlace
    hp = HuggingPlace()            # HUGGINGPLACE_API_KEY, HUGGINGPLACE_ORG_ID
    hp.log(user_prompt="What's the weather?", response="It's sunny today.")
"""

from ._background import FlushResult, install_sigterm_handler
from ._client import AsyncHuggingPlace, HuggingPlace
from ._config import BackgroundConfig, Options
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    HuggingPlaceError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ValidationError,
)
from ._models import ErrorInfo, LogRecord, LogResult, Step, TokenUsage
from ._serverless import flush_after
from ._session import Session, StepTimer, Trace
from ._stats import StatsSnapshot
from ._version import __version__
from .transports import MemoryTransport

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncHuggingPlace",
    "AuthenticationError",
    "BackgroundConfig",
    "BadRequestError",
    "ConfigurationError",
    "ErrorInfo",
    "FlushResult",
    "HuggingPlace",
    "HuggingPlaceError",
    "InternalServerError",
    "LogRecord",
    "LogResult",
    "MemoryTransport",
    "NotFoundError",
    "Options",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
    "Session",
    "StatsSnapshot",
    "Step",
    "StepTimer",
    "TokenUsage",
    "Trace",
    "ValidationError",
    "flush_after",
    "install_sigterm_handler",
    "__version__",
]
