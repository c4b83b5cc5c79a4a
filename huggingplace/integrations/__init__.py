"""Small integrations for hosts that have a shutdown hook. The SDK already delivers at exit in
these hosts on its own (see docs/hosts/index.md); each of these closes the last gap a host leaves:

- :mod:`.asgi`: ``FlushOnShutdown(app, hp)`` closes clients at ASGI lifespan shutdown (FastAPI,
  Starlette under uvicorn or gunicorn's UvicornWorker, where the server re-raises SIGTERM);
- :mod:`.flask`: ``init_app(app, hp)`` for Flask;
- :mod:`.gunicorn`: ``worker_exit`` / ``on_exit`` hooks a gunicorn config file can import;
- :mod:`.celery`: ``connect()`` closes clients in each prefork child and the main process;
- :func:`huggingplace.flush_after`: serverless handlers (the process may be frozen on return).
"""
