"""``huggingplace demo``: a realistic multi-step session through both clients, against a
temporary local collector, then everything read back and printed. Nothing leaves loopback.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from typing import Any

import requests

from ._client import AsyncHuggingPlace, HuggingPlace
from .collector import Collector

DOCS = {
    "refund": "Refunds are issued within 14 days of a return.",
    "shipping": "Orders ship within 2 business days; express is next day.",
    "weather": "Weather lookups call an external API.",
}


class FakeLLM:
    """An in-process stand-in for a chat model: answers from context, reports token usage."""

    model = "demo-gpt-mini"

    def complete(self, question: str, context: str) -> tuple[str, dict[str, int]]:
        time.sleep(random.uniform(0.01, 0.03))
        return self._answer(question, context)

    async def acomplete(self, question: str, context: str) -> tuple[str, dict[str, int]]:
        await asyncio.sleep(random.uniform(0.01, 0.03))
        return self._answer(question, context)

    def _answer(self, question: str, context: str) -> tuple[str, dict[str, int]]:
        answer = f"Based on our docs: {context}" if context else "I could not find that in our docs."
        usage = {"prompt_tokens": len((question + context).split()) * 2, "completion_tokens": len(answer.split()) * 2}
        return answer, usage


def _retrieve(question: str) -> str:
    time.sleep(0.005)
    return " ".join(text for word, text in DOCS.items() if word in question.lower())


def _sync_part(hp: HuggingPlace, llm: FakeLLM) -> str:
    questions = ["How long do refunds take?", "What are your shipping times?", "What's the weather in Paris?"]
    with hp.start_session("demo-sync-support", user_id="u-42", metadata={"app": "support-bot"}) as s:
        for question in questions:
            with s.step("retrieve", type="retrieval") as st:
                context = _retrieve(question)
                st.update(metadata={"docs_found": len(context.split(".")) - 1})
            if "weather" in question.lower():
                try:
                    with s.step("weather-tool", type="tool"):
                        raise TimeoutError("weather API did not answer in 2 s")
                except TimeoutError:
                    context = ""
            with s.step("generate", type="llm") as st:
                with s.step("call-model", llm_model=llm.model):
                    answer, usage = llm.complete(question, context)
                st.update(input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"])
            s.log(user_prompt=question, response=answer, llm_model=llm.model, token_usage=usage)
    return s.session_id


async def _async_part(hp: AsyncHuggingPlace, llm: FakeLLM) -> str:
    async with hp.start_session("demo-async-sales", user_id="u-7", metadata={"app": "sales-bot"}) as s:

        @hp.trace("answer", llm_model=llm.model)
        async def answer(question: str) -> str:
            await asyncio.sleep(0.005)
            text, _ = await llm.acomplete(question, _retrieve(question))
            return text

        await answer("Do you offer express shipping?")
        async with hp.trace("answer", user_prompt="Can I get a refund after 30 days?") as t:
            with t.step("retrieve", type="retrieval"):
                context = _retrieve("refund")
            with t.step("generate", type="llm"):
                text, usage = await llm.acomplete("refund", context)
            t.update(response=text, llm_model=llm.model, token_usage=usage)
    return s.session_id


def _tree(steps: list[dict[str, Any]], indent: str = "      ") -> list[str]:
    lines = []
    for step in steps:
        mark = "ok " if step.get("status") == "ok" else "ERR"
        kind = f" [{step['type']}]" if step.get("type") else ""
        error = f"  <- {step['error']['type']}: {step['error']['message']}" if step.get("error") else ""
        lines.append(f"{indent}{mark} {step.get('step_name')}{kind}  {step.get('time_ms', 0):.1f} ms{error}")
        lines.extend(_tree(step.get("steps") or [], indent + "    "))
    return lines


DEMO_DB = os.path.join(tempfile.gettempdir(), "huggingplace-demo.db")


def _fresh(db: str) -> None:
    for suffix in ("", "-wal", "-shm", ".devkey"):
        try:
            os.remove(db + suffix)
        except FileNotFoundError:
            pass


def run_demo(serve: bool = False) -> int:
    """The demo; with ``serve`` the collector and its viewer keep running until Ctrl-C."""
    llm = FakeLLM()
    db = DEMO_DB
    _fresh(db)
    with Collector(db) as collector:
        assert collector.dev_key is not None
        options: dict[str, Any] = {
            "api_key": collector.dev_key,
            "org_id": collector.dev_org,
            "base_url": collector.url,
        }
        print(f"local collector on {collector.url} (SQLite: {db})\n")
        with HuggingPlace(**options) as hp:
            _sync_part(hp, llm)
            sync_stats = hp.stats()

        async def async_main() -> Any:
            async with AsyncHuggingPlace(**options) as ahp:
                await _async_part(ahp, llm)
                return ahp.stats()

        async_stats = asyncio.run(async_main())
        headers = {"Authorization": f"Bearer {collector.dev_key}"}
        sessions = requests.get(f"{collector.url}/v2/sessions", headers=headers, timeout=10).json()["sessions"]
        print(f"sent: sync client {sync_stats.sent} records, async client {async_stats.sent} records")
        print(f"read back {len(sessions)} sessions through GET /v2/sessions:\n")
        for session in sessions:
            detail = requests.get(
                f"{collector.url}/v2/sessions/{session['session_id']}", headers=headers, timeout=10
            ).json()
            print(f"session {session['session_id']}: {session['records']} records, {session['errors']} errors")
            for record in detail["records"]:
                tokens = record.get("token_count")
                took = record.get("response_time")
                print(
                    f"  > {record['user_prompt']}\n"
                    f"    < {record['ai_response'][:70]}\n"
                    f"    model {record.get('llm_model') or '-'}, tokens {tokens if tokens is not None else '-'}, "
                    f"response_time {f'{took:.1f} ms' if took is not None else '-'}, status {record['status']}"
                )
                lines = _tree(record.get("step_data") or [])
                if lines:
                    print("    steps:")
                    print("\n".join(lines))
            print()
        if serve:
            return _keep_serving(collector)
    print(f"See these records in the viewer: huggingplace serve --db {db}  (it prints a login link),")
    print("or run `huggingplace demo --serve` to keep this collector running.")
    return 0


def _keep_serving(collector: Collector) -> int:
    from .collector.viewer import available

    if available():
        print(f"The viewer: {collector.login_link()}  (a one-time login link; Ctrl-C stops)")
    else:
        print(f"Collector on {collector.url}; for the viewer: pip install 'huggingplace[viewer]'. Ctrl-C stops.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
