"""FastAPI (uvicorn, or gunicorn with UvicornWorker): log a session with two timed steps per
request. Nothing else is needed for delivery when the server stops; FlushOnShutdown also sends
what requests log during the server's own graceful shutdown."""

from fastapi import FastAPI

from huggingplace import HuggingPlace
from huggingplace.integrations.asgi import FlushOnShutdown

hp = HuggingPlace(background=True)
api = FastAPI()


@api.get("/ask")
async def ask(q: str) -> dict[str, str]:
    with hp.start_session(f"web-{q}") as session:
        with session.step("retrieve", type="retrieval"):
            docs = ["Refunds take 14 days."]
        with session.step("generate", type="llm"):
            answer = f"{docs[0]} ({q})"
        session.log(user_prompt=q, response=answer)
    return {"answer": answer}


@api.get("/ask-sync")
def ask_sync(q: str) -> dict[str, str]:  # runs in a thread pool: logging works the same
    hp.log(user_prompt=q, response="sync answer")
    return {"answer": "sync answer"}


@api.get("/ping")
async def ping() -> dict[str, str]:
    return {"ok": "yes"}


app = FlushOnShutdown(api, hp)
