"""trace(): one record per block or per function call, timed, with errors recorded and re-raised."""

from huggingplace import HuggingPlace

hp = HuggingPlace()

q = "What is our refund window?"
with hp.trace("answer", user_prompt=q) as t:
    with t.step("retrieve"):
        docs = ["14 days"]
    t.update(response=f"Refunds: {docs[0]}", llm_model="gpt-4o")


@hp.trace("answer")  # user_prompt = the first str argument, response = the str return value
def answer(question: str) -> str:
    return f"You asked: {question}"


print(answer("Do you ship abroad?"))
print(hp.stats())
hp.close()
