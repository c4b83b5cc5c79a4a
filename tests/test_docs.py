"""Every Python block in the README and docs/ runs as written (Sybil finds them), each on its own
in a fresh namespace, against the suite's local collector and, for provider calls, the local fake
provider. A block meant as a fragment says so with ``<!-- skip: next "why" -->`` above it."""

from __future__ import annotations

import os
import unittest
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sybil = pytest.importorskip("sybil")
from sybil.parsers.markdown import CodeBlockParser, SkipParser  # noqa: E402

from .conftest import LiveCollector  # noqa: E402
from .fake_provider import FakeProvider  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])


def _run(example: Any) -> None:
    """Run one block as a user would paste it: a fresh ``__main__`` namespace, line numbers that
    point into the page."""
    source = str(example.parsed)
    padded = "\n" * (example.line + example.parsed.line_offset) + source
    code = compile(padded, str(example.path), "exec", dont_inherit=True)
    exec(code, {"__name__": "__main__"})


SYBIL = sybil.Sybil(parsers=[CodeBlockParser(language="python", evaluator=_run), SkipParser()], path=str(ROOT))


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture
def user_machine(collector: LiveCollector, fake: FakeProvider, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> None:
    """What the docs assume a reader has: HUGGINGPLACE_* pointing at a collector, provider keys
    and base URLs (the fake provider here), and a folder of their own."""
    for name, value in {
        "HUGGINGPLACE_API_KEY": collector.key, "HUGGINGPLACE_ORG_ID": collector.org,
        "HUGGINGPLACE_BASE_URL": collector.url, "HUGGINGPLACE_SPOOL_DIR": str(tmp_path / "spool"),
        "OPENAI_API_KEY": "sk-docs-fake", "OPENAI_BASE_URL": fake.openai_url,
        "ANTHROPIC_API_KEY": "sk-ant-docs-fake", "ANTHROPIC_BASE_URL": fake.anthropic_url,
        "CELERY_BROKER_DIR": str(tmp_path / "broker"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)


def _blocks(page: Path) -> list[Any]:
    return [e for e in SYBIL.parse(page).examples()]


def test_the_pages_have_python_blocks() -> None:
    counted = {p.relative_to(ROOT).as_posix(): sum(1 for e in _blocks(p) if e.region.evaluator is _run)
               for p in PAGES}
    assert sum(counted.values()) >= 40, counted


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_python_block_runs_as_written(page: Path, user_machine: None) -> None:
    failures, ran, skipped = [], 0, 0
    for example in _blocks(page):
        is_code = example.region.evaluator is _run
        try:
            example.evaluate()
        except unittest.SkipTest:
            skipped += 1
            continue
        except Exception as exc:  # every failing block is reported, with its line
            failures.append(f"{page.relative_to(ROOT)}:{example.line}: {type(exc).__name__}: {exc}")
            continue
        ran += is_code
    assert not failures, "\n".join(failures)
    assert skipped <= max(1, (ran + skipped) // 4), f"{skipped} fragments and {ran} blocks: too few run"


def test_the_site_builds_with_strict_checks(tmp_path: Path) -> None:
    """MkDocs (Material, mkdocstrings) with --strict: a broken link, a missing page in the nav or
    an API reference to a name that does not exist fails the suite."""
    pytest.importorskip("mkdocs")
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    assert "log_step" in api and "flush_after" in api  # the reference was generated, not left empty
    assert (tmp_path / "site" / "img" / "viewer-session.png").exists()


def test_the_wheel_ships_the_files_that_exist_and_nothing_missing(tmp_path: Path) -> None:
    """setup.py's package_data globs each match files, and the built wheel carries them."""
    import glob
    import re
    import subprocess
    import sys
    import zipfile

    setup = (ROOT / "setup.py").read_text()
    patterns = re.findall(r'"([^"]+)"', setup[setup.index("package_data"):].split("\n")[0])
    patterns = [p for p in patterns if p != "huggingplace"]
    for pattern in patterns:
        assert glob.glob(str(ROOT / "huggingplace" / pattern)), f"package_data {pattern!r} matches no file"
    import shutil

    source = tmp_path / "src"  # a copy: a build/ left in the checkout must not leak into the wheel
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "*.egg-info", "__pycache__", ".hypothesis", ".*_cache", "site", "*.db*"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("huggingplace-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for pattern in patterns:
        for found in glob.glob(str(ROOT / "huggingplace" / pattern)):
            assert "huggingplace/" + Path(found).relative_to(ROOT / "huggingplace").as_posix() in names
    assert "huggingplace/collector/viewer/static/viewer.js" in names and "huggingplace/py.typed" in names
    assert not any(n.startswith(("tests/", "docs/", "benchmarks/")) for n in names)
