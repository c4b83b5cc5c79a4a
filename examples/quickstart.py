"""Log one LLM call. Configure with HUGGINGPLACE_API_KEY, HUGGINGPLACE_ORG_ID, HUGGINGPLACE_BASE_URL
(`huggingplace serve` prints all three for a local collector)."""

from huggingplace import HuggingPlace

with HuggingPlace() as hp:
    res = hp.log(
        user_prompt="What's the weather?",
        response="It's sunny today.",
        metadata={"sessionId": "123"},
        user_metadata={"email": "user@example.com"},
    )
    print("stored", res.event_id)

    # camelCase, as JavaScript code and hand-rolled calls spell it, and one dict like the JS SDK's log({...})
    hp.log(userPrompt="Generate SQL for sales data", response="SELECT * FROM sales", llmModel="gpt-4o", tokenCount=42)
    hp.log({"userPrompt": "Hi", "response": "Hello!"})
