"""Anthropic calls logged through hp.wrap(), including the messages.stream() helper.
Needs `pip install anthropic` and ANTHROPIC_API_KEY."""

from anthropic import Anthropic

from huggingplace import HuggingPlace

with HuggingPlace() as hp:
    client = hp.wrap(Anthropic())
    with hp.context(user_id="u-42", metadata={"feature": "drafts"}):
        msg = client.messages.create(model="claude-test-model", max_tokens=200,
                                     messages=[{"role": "user", "content": "Draft a two-line thank-you note."}])
        print(msg.content[0].text)
        with client.messages.stream(model="claude-test-model", max_tokens=200,
                                    messages=[{"role": "user", "content": "Now a shorter one."}]) as stream:
            for text in stream.text_stream:
                print(text, end="")
        print()
