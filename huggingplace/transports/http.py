"""The sync transport: one pooled, keep-alive ``requests.Session``."""

from __future__ import annotations

import requests
import requests.adapters

from .._exceptions import APIConnectionError, APITimeoutError
from .._wire import Request, Response


class RequestsTransport:
    """Posts with a shared ``requests.Session`` (thread-safe for this use: one POST per call)."""

    def __init__(self, *, pool_maxsize: int = 10, session: requests.Session | None = None) -> None:
        self._owns_session = session is None
        self._session = session or requests.Session()
        if self._owns_session:
            adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_maxsize, max_retries=0)
            self._session.mount("http://", adapter)
            self._session.mount("https://", adapter)
            self._session.trust_env = True

    def send(self, request: Request, *, timeout: float) -> Response:
        try:
            answer = self._session.post(
                request.url, data=request.body, headers=dict(request.headers), timeout=timeout, allow_redirects=False
            )
        except requests.Timeout as exc:
            raise APITimeoutError(f"no answer from {request.url} within {timeout:g} s", url=request.url) from exc
        except requests.RequestException as exc:
            raise APIConnectionError(
                f"could not reach {request.url}: {type(exc).__name__}", url=request.url
            ) from exc
        return Response(status_code=answer.status_code, headers=dict(answer.headers), body=answer.content)

    def close(self) -> None:
        if self._owns_session:
            self._session.close()
