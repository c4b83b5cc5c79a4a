"""Celery, prefork pool: log in the task; nothing else. Prefork children leave through os._exit;
the SDK sends what they hold from Celery's worker_process_shutdown signal."""

import os

from celery import Celery

from huggingplace import HuggingPlace

broker = os.environ["CELERY_BROKER_DIR"]  # kombu's filesystem transport: no broker server needed
app = Celery("hosts", broker="filesystem://", broker_transport_options={
    "data_folder_in": broker, "data_folder_out": broker, "processed_folder": broker,
})
hp = HuggingPlace(background=True)


@app.task
def answer(q: str) -> str:
    hp.log(user_prompt=q, response=f"answer to {q}")
    return q
