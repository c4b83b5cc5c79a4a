"""Every exception the SDK raises, rooted at :class:`HuggingPlaceError`.

::

    HuggingPlaceError
    ├── ConfigurationError        (also ValueError)   bad or missing client options
    ├── ValidationError           (also ValueError)   a record the SDK refuses before any network call
    └── APIError                                      the endpoint was reached, or tried, and did not store
        ├── APIStatusError                            an HTTP error status; carries status_code and message
        │   ├── BadRequestError          400, 422     the endpoint refused the payload
        │   ├── AuthenticationError      401
        │   ├── PermissionDeniedError    403
        │   ├── NotFoundError            404          names the URL tried
        │   ├── RequestTooLargeError     413          names the body size
        │   ├── RateLimitError           429          once retries are spent
        │   └── InternalServerError      5xx, 408, 425
        └── APIConnectionError                        no HTTP answer (refused, reset, DNS)
            └── APITimeoutError                       no answer within ``timeout``

Transport exceptions (``requests``, ``aiohttp``) are converted once, at the transport boundary,
so callers never catch them. No message here ever contains the API key.
"""

from __future__ import annotations

__all__ = [
    "HuggingPlaceError",
    "ConfigurationError",
    "ValidationError",
    "APIError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "RequestTooLargeError",
    "RateLimitError",
    "InternalServerError",
    "APIConnectionError",
    "APITimeoutError",
]


class HuggingPlaceError(Exception):
    """Root of every error the SDK raises."""


class ConfigurationError(HuggingPlaceError, ValueError):
    """A client option is missing or invalid; raised when the client is built."""


class ValidationError(HuggingPlaceError, ValueError):
    """A record field is invalid; raised before anything touches the network.

    ``field`` is the name the caller used (or the wire name for server-side refusals).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class APIError(HuggingPlaceError):
    """The record was not stored. ``retryable`` says whether the retry policy may try again."""

    retryable: bool = False

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.url = url


class APIStatusError(APIError):
    """The endpoint answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        url: str | None = None,
        body: object = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, url=url)
        self.status_code = status_code
        self.body = body
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"HTTP {self.status_code}: {self.message}"


class BadRequestError(APIStatusError, ValidationError):
    """400 or 422: the endpoint refused the payload; ``message`` is the server's reason."""

    def __init__(self, message: str, **kwargs: object) -> None:
        APIStatusError.__init__(self, message, **kwargs)  # type: ignore[arg-type]
        self.field = None


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the API key does not belong to the configured ``org_id``."""


class NotFoundError(APIStatusError):
    """404: ``base_url`` or the path is wrong; ``url`` names what was tried."""


class RequestTooLargeError(APIStatusError):
    """413: the body exceeded the endpoint's limit; ``size`` is what was sent, in bytes."""

    size: int | None = None


class RateLimitError(APIStatusError):
    """429 after the retries were spent."""

    retryable = True


class InternalServerError(APIStatusError):
    """5xx, 408 or 425: a transient failure on the endpoint's side."""

    retryable = True


class APIConnectionError(APIError):
    """No HTTP answer: connection refused or reset, name resolution failed."""

    retryable = True


class APITimeoutError(APIConnectionError):
    """No answer within the configured ``timeout``."""
