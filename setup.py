"""Packaging for huggingplace: runtime needs requests, aiohttp, attrs and tenacity only."""

import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "huggingplace" / "_version.py").read_text()).group(1)

VIEWER = ["jinja2>=3.1", "aiohttp-jinja2>=1.6"]  # the collector's web pages (autoescaped templates)
DOCS = ["sybil>=6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.25"]

TEST = [
    *VIEWER,
    *DOCS,
    "playwright>=1.40",
    "wheel",  # tests/test_docs.py builds the wheel (without build isolation) to check what it ships  # drives Debian's chromium (.ci/run installs it); browser tests skip without one
    "pytest>=7",
    "hypothesis>=6",
    "responses>=0.23",
    "mypy>=1.8",
    "ruff>=0.4",
    "types-requests",
    "openai>=1.30",
    "anthropic>=0.30",
    "numpy",
    "pydantic>=2",
    # real hosts the suite starts as subprocesses (tests/test_hosts.py)
    "uvicorn>=0.29",
    "uvicorn-worker>=0.2",
    "gunicorn>=22",
    "fastapi>=0.110",
    "flask>=3",
    "celery>=5.3",
    "schemathesis>=4",  # fuzzes the local collector's routes from its OpenAPI document
]

setup(
    name="huggingplace",
    version=VERSION,
    description="Log every LLM call to HuggingPlace: prompts, answers, models, tokens, timed steps.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["huggingplace", "huggingplace.*"]),
    package_data={"huggingplace": ["py.typed", "collector/viewer/templates/*.html", "collector/viewer/static/*"]},
    install_requires=[
        "requests>=2.28",
        "aiohttp>=3.9",
        "attrs>=22.2",
        "tenacity>=8.2",
    ],
    extras_require={
        "test": TEST,
        "viewer": VIEWER,
        "docs": DOCS,
        "openai": ["openai>=1.30"],
        "anthropic": ["anthropic>=0.30"],
    },
    entry_points={"console_scripts": ["huggingplace=huggingplace._cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: AsyncIO",
        "Typing :: Typed",
        "Topic :: System :: Logging",
    ],
)
