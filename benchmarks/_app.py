"""The app bench_app.py serves: one route, a session with two timed steps logged per request
when HP_LOG=1 (HUGGINGPLACE_SENDER says from where it is delivered), nothing logged when HP_LOG=0."""

import os

from fastapi import FastAPI

from huggingplace import HuggingPlace

LOG = os.environ.get("HP_LOG") == "1"
hp = HuggingPlace(background=True) if LOG else None
app = FastAPI()


@app.get("/ask")
async def ask(q: str) -> dict[str, str]:
    answer = f"Refunds take 14 days ({q})"
    if hp is not None:
        with hp.start_session(f"bench-{q}") as session:
            with session.step("retrieve", type="retrieval"):
                pass
            with session.step("generate", type="llm"):
                pass
            session.log(user_prompt=q, response=answer, llm_model="gpt-4o", token_count=42)
    return {"answer": answer}
