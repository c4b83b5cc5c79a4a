"""``python -m huggingplace.providers``: print the table of what a wrapped call's record holds
(docs/providers/fields.md embeds it; a test keeps the two equal)."""

from ._base import fields_table

print(fields_table(), end="")
