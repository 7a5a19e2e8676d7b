"""Claude Code (npm ``@anthropic-ai/claude-code``, the real CLI) in ``--print``
mode against a real ``moonbase serve``: it answers a prompt and runs a tool.

moonbase's model sits behind an upstream engine (flavour ``generic``). The
upstream is the scripted OpenAI-compatible server of the upstream tests, and
not a second moonbase on SmolLM2: under ``tool_choice: auto`` (all Claude Code
sends) SmolLM2-135M does not choose to call a tool by itself, and what is
tested here is the path between Claude Code and the engine: Anthropic's
protocol in, OpenAI's to the engine, the tool call back out, Claude Code
running it, and the tool's result going back in. The upstream calls ``Bash``
once, then answers with what the tool printed.

The CLI comes from the npm registry at a pinned version (``make install-dev``
puts it under ``.cache/claude-code``); where it is not installed (no npm on
the machine) the test says so and skips.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import start_server
from tests.fake_upstream import FakeUpstream, Script, serving

REPO = Path(__file__).resolve().parents[2]
# The native binary, an optional dependency named by platform (linux-x64, ...).
NATIVE = "node_modules/@anthropic-ai/claude-code-*/claude"
MARKER = "moonbase-tool-ran-7f3a"


def claude_binary() -> Path | None:
    configured = os.environ.get("MOONBASE_CLAUDE_CODE")
    candidates = [Path(configured)] if configured else []
    candidates += sorted((REPO / ".cache" / "claude-code").glob(NATIVE))
    found = next((path for path in candidates if path.is_file()), None)
    if found is None and shutil.which("claude"):
        return Path(str(shutil.which("claude")))
    return found


def tool_result(payload: dict[str, Any]) -> str | None:
    for message in payload.get("messages", []):
        if message.get("role") == "tool":
            content = message.get("content")
            if isinstance(content, list):
                content = "".join(part.get("text", "") for part in content)
            return str(content)
    return None


def script_for(payload: dict[str, Any]) -> Script:
    """Call Bash once; then answer with what it printed. Requests without the
    Bash tool (Claude Code's side queries, such as titles) get plain text."""
    usage = {"prompt_tokens": 900, "completion_tokens": 20, "total_tokens": 920}
    names = {tool["function"]["name"] for tool in payload.get("tools") or ()}
    result = tool_result(payload)
    if result is not None:
        return Script(content=f"The command printed: {result.strip()}", usage=usage)
    if "Bash" in names:
        arguments = json.dumps({"command": f"echo {MARKER}", "description": "Print the marker"})
        call = {"name": "Bash", "arguments": arguments}
        return Script(content="", tool_calls=[call], usage=usage)
    return Script(content="Shell check", usage=usage)


async def test_claude_code_answers_and_runs_a_tool(tmp_path: Path):
    binary = claude_binary()
    if binary is None:
        pytest.skip("Claude Code is not installed (make install-dev installs it with npm)")
    upstream = FakeUpstream("claude-code-upstream")
    upstream.script_for = script_for
    async with serving(upstream) as url:
        config = tmp_path / "moonbase.toml"
        config.write_text(
            'default_engine = "up"\n'
            "[engines.up]\n"
            'kind = "upstream"\n'
            'flavour = "generic"\n'
            f'urls = ["{url}"]\n'
        )
        server = await asyncio.to_thread(
            start_server, tmp_path / "moonbase", {"MOONBASE_CONFIG": str(config)}
        )
        try:
            home = tmp_path / "home"
            home.mkdir()
            env = {
                "PATH": os.environ["PATH"],
                "HOME": str(home),
                "ANTHROPIC_BASE_URL": f"{server.base_url}/anthropic",
                "ANTHROPIC_AUTH_TOKEN": server.api_key,
                "ANTHROPIC_MODEL": "moonshot-v1-128k",
                "ANTHROPIC_DEFAULT_HAIKU_MODEL": "moonshot-v1-128k",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "DISABLE_AUTOUPDATER": "1",
                "DISABLE_TELEMETRY": "1",
                "DISABLE_ERROR_REPORTING": "1",
            }
            process = await asyncio.create_subprocess_exec(
                str(binary), "-p", "Print the marker with the shell.",
                "--output-format", "json", "--allowedTools", "Bash",
                cwd=tmp_path, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(process.communicate(), timeout=600)
        finally:
            await asyncio.to_thread(server.stop)
    print(out.decode()[-2000:], err.decode()[-2000:])
    assert process.returncode == 0, err.decode()
    result = json.loads(out)
    # The tool really ran (its output reached the upstream as a tool result),
    # and Claude Code printed the answer that came back.
    assert any(MARKER in (tool_result(request) or "") for request in upstream.requests)
    assert MARKER in result["result"] and not result.get("is_error")
    database = sqlite3.connect(server.data_dir / "moonbase.db")
    (records,) = database.execute("SELECT count(*) FROM usage_records").fetchone()
    assert records >= 2  # the tool call and the answer, billed like any request
