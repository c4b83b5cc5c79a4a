"""Flask under gunicorn (sync or gthread workers, with or without --preload): log each request.
Workers leave through sys.exit, and the SDK sends what they hold on the way out."""

from flask import Flask, request

from huggingplace.integrations.flask import init_app

app = Flask(__name__)
hp = init_app(app)  # a background client, configured from app.config or HUGGINGPLACE_*


@app.get("/ask")
def ask() -> dict[str, str]:
    q = request.args["q"]
    hp.log(user_prompt=q, response=f"answer to {q}")
    return {"answer": f"answer to {q}"}


@app.get("/ping")
def ping() -> dict[str, str]:
    return {"ok": "yes"}
