"""Production set-up: log() only queues (~50 µs), a worker thread delivers, and records wait in
an on-disk spool if the endpoint is down. close() (also run at exit) sends or spools the rest."""

from huggingplace import HuggingPlace

hp = HuggingPlace(background=True)

for turn in range(20):
    hp.log(user_prompt=f"question {turn}", response=f"answer {turn}", llm_model="gpt-4o", token_count=42)

result = hp.flush(timeout=5.0)     # sent, spooled, pending, dropped, rejected
print(result)
print(hp.stats())
hp.close(timeout=2.0)
