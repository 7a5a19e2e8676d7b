"""The test data kept in tests/data (see its README), opened in one place.

Every accessor raises with the path it looked for when the data is missing, so
a test can never pass by collecting zero cases.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
SPEC_PATH = DATA / "spec" / "moonshot-openapi.json"
MFJS_CASES = DATA / "mfjs" / "validator_cases"


class MissingTestData(RuntimeError):
    """A file the tests need is not in the checkout."""


def _existing(path: Path) -> Path:
    if not path.exists():
        raise MissingTestData(f"test data not found: {path} (see tests/data/README.md)")
    return path


def openapi_spec() -> dict[str, Any]:
    """The project's copy of Moonshot's OpenAPI document."""
    return json.loads(_existing(SPEC_PATH).read_text(encoding="utf-8"))


def mfjs_suites() -> list[Path]:
    """The folders of the MFJS conformance suites, sorted by name."""
    suites = sorted(path for path in _existing(MFJS_CASES).iterdir() if path.is_dir())
    if not suites:
        raise MissingTestData(f"no MFJS suites under {MFJS_CASES}")
    return suites


def mfjs_lines(file_name: str) -> list[tuple[str, int, str]]:
    """(suite, line number, text) for each non-blank line of every suite's `file_name`."""
    lines = []
    for suite in mfjs_suites():
        text = _existing(suite / file_name).read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                lines.append((suite.name, number, line))
    if not lines:
        raise MissingTestData(f"no lines in any {MFJS_CASES}/*/{file_name}")
    return lines


def valid_mfjs_schemas() -> list[Any]:
    """Every schema the conformance vectors say a validator accepts."""
    return [json.loads(line) for _, _, line in mfjs_lines("valid.jsonl")]


KIMI_CLI_TOOLS = DATA / "kimi-cli" / "tools-1.52.0.json"
MCP_FILESYSTEM_TOOLS = DATA / "mcp" / "server-filesystem-2026.8.31.json"


def kimi_cli_tools() -> list[dict[str, Any]]:
    """The tools kimi-cli 1.52.0 sends, in OpenAI's tools format, as recorded."""
    tools: list[dict[str, Any]] = json.loads(_existing(KIMI_CLI_TOOLS).read_text("utf-8"))
    if not tools:
        raise MissingTestData(f"no tools in {KIMI_CLI_TOOLS}")
    return tools


def mcp_filesystem_tools() -> list[dict[str, Any]]:
    """The reference MCP filesystem server's tools as OpenAI tools (inputSchema
    becomes parameters, as MCP clients hand them to a chat API)."""
    listed = json.loads(_existing(MCP_FILESYSTEM_TOOLS).read_text("utf-8"))
    if not listed:
        raise MissingTestData(f"no tools in {MCP_FILESYSTEM_TOOLS}")
    return [
        {
            "type": "function",
            "function": {
                "name": tool["name"],
                "description": tool.get("description", ""),
                "parameters": tool["inputSchema"],
            },
        }
        for tool in listed
    ]


CHAT_TEMPLATES = DATA / "chat_templates"


def chat_template(name: str) -> str:
    """A model's chat template as its repository ships it (tests/data/chat_templates)."""
    return _existing(CHAT_TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8")
