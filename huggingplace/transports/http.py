"""The sync transport: one pooled, keep-alive ``requests.Session``."""

from __future__ import annotations

import os

import requests
import requests.adapters

from .._exceptions import APIConnectionError, APITimeoutError
from .._wire import Request, Response
from ._env import Proxies


class RequestsTransport:
    """Posts with a shared ``requests.Session`` (thread-safe for this use: one POST per call)."""

    def __init__(self, *, pool_maxsize: int = 10, session: requests.Session | None = None) -> None:
        self._owns_session = session is None
        self._session = session or requests.Session()
        if self._owns_session:
            adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_maxsize, max_retries=0)
            self._session.mount("http://", adapter)
            self._session.mount("https://", adapter)
            # the environment (proxies, CA bundle) is read once here, not on every post
            self._session.trust_env = False
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if bundle:
                self._session.verify = bundle
        self._proxies = Proxies()

    def send(self, request: Request, *, timeout: float) -> Response:
        try:
            proxy = self._proxies.for_url(request.url) if self._owns_session else None
            answer = self._session.post(
                request.url, data=request.body, headers=dict(request.headers), timeout=timeout, allow_redirects=False,
                proxies={"http": proxy, "https": proxy} if proxy else None,
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
