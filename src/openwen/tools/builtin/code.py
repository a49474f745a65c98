"""The Python code interpreter tool, on the bubblewrap sandbox."""

from __future__ import annotations

from openwen.tools.base import FunctionTool, ToolOutput
from openwen.tools.context import ToolContext
from openwen.tools.sandbox import Sandbox, SandboxLimits, SandboxResult


def describe(result: SandboxResult) -> str:
    """The run as text for the model: status, stdout, stderr, and how many images came back."""
    status = (f"stopped by the {result.limit}" if result.limit
              else f"exit status {result.exit_code}")
    parts = [status]
    if result.stdout:
        parts.append(f"stdout:\n{result.stdout.rstrip()}")
    if result.stderr:
        parts.append(f"stderr:\n{result.stderr.rstrip()}")
    if not result.stdout and not result.stderr:
        parts.append("(no output; use print() to show values)")
    if result.images:
        parts.append(f"[{len(result.images)} image(s) returned to the user]")
    return "\n".join(parts)


def make_code_tool(ctx: ToolContext) -> FunctionTool:
    limits = SandboxLimits.from_settings(ctx.settings)
    sandbox = Sandbox(limits)

    async def run_python(code: str) -> ToolOutput:
        """Run Python 3 code in a sandbox and return its printed output.

        Use print() to show results. There is no network and no access to the user's files;
        each run starts fresh in an empty working directory. matplotlib figures (if matplotlib is
        installed) are returned to the user as images.

        Args:
            code: the complete Python program to run.
        """
        result = await sandbox.run(code)
        error = None if result.ok else (result.limit or f"exit status {result.exit_code}")
        return ToolOutput(describe(result), error=error, images=result.images)

    return FunctionTool(run_python, timeout=limits.queue_seconds + limits.wall_seconds + 15)
