"""Both clients expose the same public API; __all__ lists exactly the public names."""

from __future__ import annotations

import inspect

import huggingplace
from huggingplace import AsyncHuggingPlace, HuggingPlace


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_same_public_methods() -> None:
    assert _public(HuggingPlace) == _public(AsyncHuggingPlace)


def test_io_methods_are_coroutines_only_in_the_async_client() -> None:
    for name in ("log", "close"):
        assert not inspect.iscoroutinefunction(getattr(HuggingPlace, name))
        assert inspect.iscoroutinefunction(getattr(AsyncHuggingPlace, name))
    for name in ("start_session", "trace", "stats"):
        assert not inspect.iscoroutinefunction(getattr(AsyncHuggingPlace, name))


def test_same_signatures() -> None:
    for name in _public(HuggingPlace):
        sync, async_ = getattr(HuggingPlace, name), getattr(AsyncHuggingPlace, name)
        if callable(sync):
            assert inspect.signature(sync).parameters.keys() == inspect.signature(async_).parameters.keys(), name


def test_all_is_sorted_and_complete() -> None:
    packages = {"transports", "collector", "providers", "integrations"}
    public = {n for n in dir(huggingplace) if not n.startswith("_")} - packages
    assert set(huggingplace.__all__) - {"__version__"} == public
    assert huggingplace.__all__ == sorted(huggingplace.__all__, key=lambda n: (n.startswith("_"), n))


def test_py_typed_ships() -> None:
    import pathlib

    assert (pathlib.Path(huggingplace.__file__).parent / "py.typed").exists()


def test_fields_doc_matches_the_field_table() -> None:
    """docs/fields.md lists every keyword, alias and wire name of _fields.py."""
    import pathlib

    from huggingplace._fields import FIELDS, fields_table

    doc = (pathlib.Path(__file__).parent.parent / "docs" / "fields.md").read_text()
    assert fields_table() in doc, "regenerate the table: python -m huggingplace._fields"
    for field in FIELDS:
        assert f"| `{field.name}` |" in doc and (not field.wire or f"`{field.wire}`" in doc)
        for alias in field.aliases:
            assert f"`{alias}`" in doc
