"""What leaves the process: content capture, redaction, ``before_send``, sampling and size caps,
applied to the wire payload in one place. Pure apart from the counters it bumps.

In background mode this runs on the worker thread, not on the caller's.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any, Optional

import attrs

from ._models import rng
from ._redact import Redactor, build_redactor, marker
from ._serialize import dumps, to_jsonable
from ._stats import Stats

__all__ = ["PrivacyConfig", "Processor", "FAILED", "TRUNCATED"]

logger = logging.getLogger("huggingplace")

FAILED = marker("redaction_failed")
TRUNCATED = "…[truncated]"
CONTENT_FIELDS = ("user_prompt", "ai_response")
STEP_CONTENT = ("user_question", "prompt_response")
STRUCTURED_FIELDS = ("metaData", "user_meta_data", "step_data", "mapping_table")  #: redacted string by string
BeforeSend = Callable[[dict[str, Any]], Optional[dict[str, Any]]]


@attrs.frozen(kw_only=True)
class PrivacyConfig:
    """Resolved privacy options (see docs/privacy.md)."""

    redact: Any = "secrets"
    capture_content: bool = True
    before_send: Optional[BeforeSend] = None
    sample_rate: float = 1.0
    max_field_chars: int = 256 * 1024
    max_record_bytes: int = 1024 * 1024
    max_metadata_depth: int = 10


def _cap_depth(value: Any, depth: int) -> Any:
    if isinstance(value, dict):
        if depth <= 0:
            return "<max depth>"
        return {k: _cap_depth(v, depth - 1) for k, v in value.items()}
    if isinstance(value, list):
        if depth <= 0:
            return "<max depth>"
        return [_cap_depth(v, depth - 1) for v in value]
    return value


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - len(TRUNCATED))] + TRUNCATED


def _size(payload: dict[str, Any]) -> int:
    return len(dumps(payload))


class Processor:
    """Turns a wire payload into what may leave the process, or None when it must not."""

    def __init__(self, config: PrivacyConfig, stats: Stats) -> None:
        self.config = config
        self.stats = stats
        self.redactor: Redactor = build_redactor(config.redact)
        self._warned: set[str] = set()

    # ---- sampling: on the caller's thread, before anything is queued ---------------------
    def keep(self, session_id: Optional[str]) -> bool:
        """Whole sessions are kept or dropped together: the decision hashes the session id
        (a record without one is sampled at random)."""
        rate = self.config.sample_rate
        if rate >= 1.0:
            return True
        if rate <= 0.0:
            return False
        if session_id is None:
            return rng.random() < rate
        digest = hashlib.sha256(session_id.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < rate

    # ---- everything else: where the payload is serialized ----------------------------------
    def body(self, payload: dict[str, Any]) -> Optional[bytes]:
        """What may leave the process, encoded: content stripped or redacted, ``before_send``
        applied, sizes capped; None when ``before_send`` dropped it. The size check's encoding
        is the body (one JSON encoding per record, not two)."""
        if not self.config.capture_content:
            self._strip_content(payload)
        try:
            if self.redactor:
                self._redact(payload)
        except Exception as exc:
            self._fail_closed(payload, "redaction", exc)
        if self.config.before_send is not None:
            try:
                changed: Any = self.config.before_send(payload)
            except Exception as exc:
                self._fail_closed(payload, "before_send", exc)
            else:
                if changed is None:
                    self.stats.drop("before_send")
                    return None
                if not isinstance(changed, dict):
                    self._fail_closed(payload, "before_send", TypeError(f"returned {type(changed).__name__}"))
                else:  # whatever the hook put back (datetimes, sets, NaN, objects) becomes JSON-safe
                    payload = to_jsonable(changed)
        return self._govern_size(payload)

    def _strip_content(self, payload: dict[str, Any]) -> None:
        for field in CONTENT_FIELDS:
            if field in payload:
                payload[field] = ""
        payload.setdefault("metaData", {})["content_captured"] = False
        for step in _walk_steps(payload.get("step_data")):
            for key in STEP_CONTENT:
                step.pop(key, None)

    def _redact(self, payload: dict[str, Any]) -> None:
        r = self.redactor
        texts = [payload[field] for field in CONTENT_FIELDS if isinstance(payload.get(field), str)]
        for field in STRUCTURED_FIELDS:
            if field in payload:
                r.collect(payload[field], texts)
        error = payload.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        if isinstance(message, str):
            texts.append(message)
        if not r.could_change(texts):  # the common record: one screen of all its text, and done
            return
        for field in CONTENT_FIELDS:
            if isinstance(payload.get(field), str):
                payload[field] = r.text(payload[field])
        for field in STRUCTURED_FIELDS:
            if field in payload:
                payload[field] = r.value(payload[field])
        if isinstance(message, str):
            assert isinstance(error, dict)
            error["message"] = r.text(message)

    def _fail_closed(self, payload: dict[str, Any], stage: str, exc: BaseException) -> None:
        """Send no content we could not vet: timing, model, tokens and ids stay."""
        self.stats.add("redaction_failures")
        if stage not in self._warned:
            self._warned.add(stage)
            logger.error("%s raised %s: the record's content was replaced by %s", stage, type(exc).__name__, FAILED)
        for field in CONTENT_FIELDS:
            if field in payload:
                payload[field] = FAILED
        meta = payload.get("metaData")
        session = meta.get("sessionId") if isinstance(meta, dict) else None
        payload["metaData"] = {"redaction_failed": stage, **({"sessionId": session} if session else {})}
        payload.pop("user_meta_data", None)
        payload.pop("mapping_table", None)
        if isinstance(payload.get("error"), dict):
            payload["error"]["message"] = FAILED
        for step in _walk_steps(payload.get("step_data")):
            for key in (*STEP_CONTENT, "metadata"):
                step.pop(key, None)
            if isinstance(step.get("error"), dict):
                step["error"]["message"] = FAILED

    def _govern_size(self, payload: dict[str, Any]) -> bytes:
        """Field caps, a metadata depth cap and a whole-record cap; the result stays valid JSON
        and says what was cut in ``metaData.truncated`` (original lengths). Returns it encoded."""
        cut: dict[str, int] = {}
        for field in ("metaData", "user_meta_data"):
            if isinstance(payload.get(field), dict):
                payload[field] = _cap_depth(payload[field], self.config.max_metadata_depth)
        for field in CONTENT_FIELDS:
            text = payload.get(field)
            if isinstance(text, str) and len(text) > self.config.max_field_chars:
                cut[field] = len(text)
                payload[field] = _truncate(text, self.config.max_field_chars)
        if cut:
            payload.setdefault("metaData", {})["truncated"] = dict(cut)
        body = dumps(payload)
        size = len(body)
        if size <= self.config.max_record_bytes:
            return body
        # too big as a whole: drop the bulkiest structured fields first, then shorten the text
        for field in ("step_data", "mapping_table", "user_meta_data", "metaData"):
            if field in payload and size > self.config.max_record_bytes:
                original = _size({field: payload[field]})
                if field == "metaData":
                    keep = {k: payload["metaData"][k] for k in ("sessionId",) if k in payload["metaData"]}
                    payload["metaData"] = keep
                else:
                    del payload[field]
                cut[field] = original
                payload.setdefault("metaData", {})["truncated"] = dict(cut)
                body = dumps(payload)
                size = len(body)
        while size > self.config.max_record_bytes:
            longest = max(CONTENT_FIELDS, key=lambda f: len(payload.get(f) or ""))
            text = payload.get(longest) or ""
            if not text:
                break
            cut.setdefault(longest, len(text))
            payload[longest] = _truncate(text, max(0, len(text) - (size - self.config.max_record_bytes) - 64))
            payload.setdefault("metaData", {})["truncated"] = dict(cut)
            body = dumps(payload)
            size = len(body)
        return body


def _walk_steps(steps: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(steps, list):
        for step in steps:
            if isinstance(step, dict):
                out.append(step)
                out.extend(_walk_steps(step.get("steps")))
    return out
