"""Every OpenAI call logged with one line: text, model, tokens, timing, streams included.
Needs `pip install openai` and OPENAI_API_KEY (and OPENAI_BASE_URL for a compatible server)."""

from openai import OpenAI

from huggingplace import HuggingPlace

hp = HuggingPlace(background=True)
client = hp.wrap(OpenAI())

messages = [{"role": "user", "content": "Give me one fun fact about octopuses."}]
reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
print(reply.choices[0].message.content)

messages += [{"role": "assistant", "content": reply.choices[0].message.content},
             {"role": "user", "content": "And one more?"}]
for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True):
    print(chunk.choices[0].delta.content or "", end="")
print()
hp.close()   # both turns share one session_id: the conversation is threaded for you
