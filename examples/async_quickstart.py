"""The same with AsyncHuggingPlace: every network call is awaited, the event loop never blocks."""

import asyncio

from huggingplace import AsyncHuggingPlace


async def main() -> None:
    async with AsyncHuggingPlace() as hp:
        await hp.log(user_prompt="What's the weather?", response="It's sunny today.")

        async with hp.start_session("session-async-1") as s:
            with s.step("generate", type="llm"):
                await asyncio.sleep(0.01)
            await s.log(user_prompt="Hi", response="Hello!", llm_model="gpt-4o")

        @hp.trace("answer")
        async def answer(question: str) -> str:
            await asyncio.sleep(0.01)
            return "42"

        await answer("What is the answer?")
        async with hp.trace("answer", user_prompt="And the question?") as t:
            t.update(response="Unknown")
        print(hp.stats())


asyncio.run(main())
