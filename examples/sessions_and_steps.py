"""A conversation with timed, nested steps: each s.log() carries the steps timed since the last one."""

import time

from huggingplace import HuggingPlace


def retrieve(question: str) -> list[str]:
    time.sleep(0.01)
    return ["Refunds are issued within 14 days."]


def call_model(question: str, docs: list[str]) -> str:
    time.sleep(0.02)
    return f"{docs[0]} (answering: {question})"


with HuggingPlace() as hp, hp.start_session("session-123", metadata={"app": "sql-bot"}) as s:
    q = "How long do refunds take?"
    with s.step("retrieve", type="retrieval") as st:
        docs = retrieve(q)
        st.update(metadata={"k": len(docs)})
    with s.step("generate", type="llm"), s.step("call-model", llm_model="gpt-4o"):
        a = call_model(q, docs)
    res = s.log(user_prompt=q, response=a, llm_model="gpt-4o")
    print("stored", res.event_id, "in session", s.session_id)
