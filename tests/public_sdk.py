"""The public HuggingPlace SDKs' documented examples, as their users write them, and the bodies
those SDKs put on the wire for them (described in ../shared/research/public-sdk-examples.md).

Each example is a dict a user passed to the public SDK's ``log()``, ``logStep()``/``log_step()``
or ``session.log()``; ``wire_body`` does to it what that SDK does before posting it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

JS_STEP = {
    "step_name": "data_processing", "status": "completed", "time_ms": 1800, "userQuestion": "Process weather data",
    "promptResponse": "Data processed successfully", "token": 120, "responseTime": "0 min 1.80 sec",
    "inputTokens": 40, "outputTokens": 80, "llmModel": "gpt-4o",
}
PY_STEP = {
    "step_name": "sql_generation", "status": "completed", "time_ms": 1500,
    "user_question": "Generate SQL for sales data", "prompt_response": "SELECT * FROM sales WHERE ...",
    "token": 150, "response_time": "0 min 1.50 sec", "input_tokens": 50, "output_tokens": 100,
    "llm_model": "gpt-4o",
}
REFERENCE = {
    "user_prompt": "What's the weather like?",
    "ai_response": "The weather is sunny today.",
    "response": "The weather is sunny today.",
    "user_uuid": "user-123",
    "session_id": "session-456",
    "file_name": "weather_data.csv",
    "llm_model": "gpt-4o",
    "llm_model2": "gpt-4o",
    "token_count": 150,
    "response_time": "0 min 2.50 sec",
    "message_id": "msg-789",
    "user_roles": ["admin"],
    "org_uuid": "org-202",
    "mapping_table": "mappings_org_202",
}


@dataclass
class Example:
    name: str
    sdk: str  # "js" or "py"
    call: str  # "log", "log_step" or "session"
    fields: dict[str, Any]
    session_id: str = ""
    expect: dict[str, Any] = field(default_factory=dict)  # columns of the stored record

    def __str__(self) -> str:
        return self.name


EXAMPLES = [
    Example("js-quick-start", "js", "log",
            {"userPrompt": "What's the weather?", "response": "It's sunny today.",
             "metadata": {"sessionId": "123", "userId": "user-456"}},
            expect={"user_prompt": "What's the weather?", "ai_response": "It's sunny today."}),
    Example("js-log-reference", "js", "log",
            {**REFERENCE,
             "metaData": {"sessionId": "session-456", "likes": 1, "dislikes": 0, "messageId": "msg-789",
                          "recommendationId": "rec-123"},
             "user_meta_data": {"email": "user@example.com", "username": "john_doe", "orgName": "Example Corp"},
             "step_data": [JS_STEP]},
            expect={"session_id": "session-456", "response_time": 2500.0, "user_roles": ["admin"],
                    "llm_model2": "gpt-4o", "token_count": 150}),
    Example("js-manual-logging", "js", "log",
            {"user_prompt": "How many sales were there last month?",
             "response": "There were 1,245 sales last month.", "user_uuid": "user-123",
             "session_id": "session-456", "llm_model": "gpt-4o", "token_count": 350,
             "response_time": "0 min 2.30 sec", "step_data": [dict(JS_STEP, responseTime=1.5)],
             "userRoles": "admin", "orgUuid": "org-202", "mappingTable": "mappings_org_202"},
            expect={"user_roles": ["admin"], "org_uuid": "org-202", "mapping_table": "mappings_org_202",
                    "response_time": 2300.0}),
    Example("js-log-step", "js", "log_step", dict(JS_STEP),
            expect={"user_prompt": "Process weather data", "ai_response": "Data processed successfully",
                    "llm_model": "gpt-4o", "token_count": 120, "response_time": 1800.0}),
    Example("js-session-1", "js", "session",
            {"userPrompt": "What's the weather like?", "response": "The weather is sunny today.",
             "metadata": {"step": 1}}, session_id="conversation-123"),
    Example("js-session-2", "js", "session",
            {"userPrompt": "What about tomorrow?", "response": "Tomorrow will be cloudy.", "metadata": {"step": 2}},
            session_id="conversation-123"),
    Example("js-log-with-timing", "js", "log",
            {"user_prompt": "Summarise this", "ai_response": "A summary.", "response_time": "0 min 0.84 sec",
             "llm_model": "gpt-4o-mini"},
            expect={"response_time": 840.0}),
    Example("js-log-with-timing-error", "js", "log",
            {"user_prompt": "Summarise this", "ai_response": "Error: upstream timed out",
             "response_time": "0 min 30.00 sec", "metaData": {"error": True, "errorMessage": "upstream timed out"}},
            expect={"response_time": 30000.0}),
    Example("py-quick-start", "py", "log",
            {"user_prompt": "What's the weather like?", "ai_response": "The weather is sunny today.",
             "metaData": {"session_id": "session-123", "user_id": "user-456"}}),
    Example("py-log-reference", "py", "log",
            {**REFERENCE,
             "metaData": {"session_id": "session-456", "likes": 1, "dislikes": 0, "message_id": "msg-789",
                          "recommendation_id": "rec-123"},
             "user_meta_data": {"email": "user@example.com", "username": "john_doe", "org_name": "Example Corp"},
             "step_data": [PY_STEP]},
            expect={"response_time": 2500.0, "user_roles": ["admin"], "token_count": 150}),
    Example("py-manual-logging", "py", "log",
            {"user_prompt": "How many sales were there last month?",
             "ai_response": "There were 1,245 sales last month.", "user_uuid": "user-123",
             "session_id": "session-456", "file_name": "sales_data.csv", "llm_model": "gpt-4o",
             "token_count": 350, "response_time": "0 min 2.30 sec",
             "metaData": {"session_id": "session-456", "likes": 0, "dislikes": 0, "recommendation_id": "rec-789"},
             "step_data": [dict(PY_STEP, response_time=1.5)],
             "user_roles": "admin", "org_uuid": "org-202", "mapping_table": "mappings_org_202"},
            expect={"user_roles": ["admin"], "response_time": 2300.0, "file_name": "sales_data.csv"}),
    Example("py-log-step", "py", "log_step", dict(PY_STEP),
            expect={"user_prompt": "Generate SQL for sales data", "token_count": 150, "response_time": 1500.0}),
    Example("py-session-1", "py", "session",
            {"user_prompt": "What's the weather like?", "response": "The weather is sunny today.",
             "metadata": {"step": 1}}, session_id="conversation-123"),
    Example("py-session-2", "py", "session",
            {"user_prompt": "What about tomorrow?", "response": "Tomorrow will be cloudy.",
             "metadata": {"step": 2}}, session_id="conversation-123"),
    Example("py-error-handling", "py", "log", {"user_prompt": "Test prompt", "response": "Test response"}),
]


def wire_body(example: Example, org_id: Any) -> dict[str, Any]:
    """The body the public SDK posts for this example (their own code paths, as documented)."""
    given = copy.deepcopy(example.fields)
    if example.call == "log_step":
        step = given
        if example.sdk == "js":
            return {"user_prompt": step.get("userQuestion") or "", "ai_response": step.get("promptResponse") or "",
                    "llm_model": step.get("llmModel"), "token_count": step.get("token"),
                    "response_time": step.get("responseTime"), "step_data": [step], "org_id": org_id, "mode": "prod"}
        return {"user_prompt": step.get("user_question") or "", "ai_response": step.get("prompt_response") or "",
                "llm_model": step.get("llm_model"), "token_count": step.get("token"),
                "response_time": step.get("response_time"), "step_data": [step], "org_id": org_id, "mode": "prod"}
    body = dict(given)
    if example.call == "session":  # defaults merged under the caller's dict
        body.setdefault("session_id", example.session_id)
        body["metaData"] = {**body.get("metaData", {})}
        body["user_meta_data"] = {**body.get("user_meta_data", {})}
    if "ai_response" not in body and "response" in body:
        body["ai_response"] = body["response"]
    if "user_meta_data" not in body and "userMetadata" in body:
        body["user_meta_data"] = body["userMetadata"]
    if example.sdk == "py" and "metaData" not in body and "metadata" in body:
        body["metaData"] = body["metadata"]
    body["org_id"] = org_id
    body["mode"] = "prod"
    return body
