"""The public surface as a type checker sees it (mypy --strict on code a user would write): the
clients' options are spelled out, wrap() returns the type it was given, a session's log() is a
LogResult for the sync client and an awaitable of one for the async client."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from huggingplace._client import _BaseClient
from huggingplace._config import ClientOptions

USER_CODE = '''
from typing import Awaitable
from openai import OpenAI
from huggingplace import AsyncHuggingPlace, HuggingPlace, LogResult

hp = HuggingPlace(api_key="k", org_id=1, background=True, exit_timeout=1.0, redact="pii")
client: OpenAI = hp.wrap(OpenAI(api_key="x"))
result: LogResult = hp.start_session("s").log(user_prompt="q", response="a")
ahp = AsyncHuggingPlace(api_key="k", org_id="o")
pending: Awaitable[LogResult] = ahp.start_session("s").log(user_prompt="q", response="a")
HuggingPlace(api_kye="k")
AsyncHuggingPlace(timeout="slow")
wrong: LogResult = ahp.start_session("s").log(user_prompt="q", response="a")
'''


def test_user_code_type_checks_as_documented(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    source = tmp_path / "user.py"
    source.write_text(USER_CODE)
    out, _, status = api.run(["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"),
                              "--python-version", "3.11", str(source)])
    errors = [line.split(": error: ")[1] for line in out.splitlines() if ": error: " in line]
    assert status == 1
    assert len(errors) == 3, out
    assert errors[0].startswith('Unexpected keyword argument "api_kye" for "HuggingPlace"; did you mean "api_key"?')
    assert errors[1].startswith('Argument "timeout" to "AsyncHuggingPlace" has incompatible type "str"')
    assert "Awaitable[LogResult]" in errors[2]  # the async session's log() must be awaited


def test_the_typed_options_are_the_options_the_clients_take() -> None:
    taken = {name for name, p in inspect.signature(_BaseClient.__init__).parameters.items()
             if p.kind is p.KEYWORD_ONLY and name != "transport"}
    assert taken == set(ClientOptions.__annotations__)
