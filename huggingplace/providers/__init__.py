"""Provider adapters: any LLM response (object or dict) to one normalized result.

Built in: OpenAI Chat Completions and Responses (objects, dicts, streams), Anthropic Messages
(and stream events), Google Gemini, AWS Bedrock Converse, Cohere, Mistral, Ollama, and any
OpenAI-compatible dict. No provider package is imported. Add your own with :func:`register` or
the ``huggingplace.providers`` entry-point group.
"""

from ._base import Accumulator, Adapter, Normalized, as_dict
from ._registry import Registry, adapt, register, registry

__all__ = ["Accumulator", "Adapter", "Normalized", "Registry", "adapt", "as_dict", "register", "registry"]
