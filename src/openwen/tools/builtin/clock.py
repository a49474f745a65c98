"""The current date and time, in any IANA time zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from openwen.tools.base import FunctionTool, ToolError


def current_datetime(timezone: str = "local") -> str:
    """Get the current date, time and weekday.

    Args:
        timezone: an IANA time zone such as "Europe/Paris" or "UTC"; "local" for the
            computer's own zone.
    """
    now = _now(timezone.strip() or "local")
    offset = now.strftime("%z")
    return (f"{now.strftime('%A, %Y-%m-%d %H:%M:%S')} "
            f"(UTC{offset[:3]}:{offset[3:]}, {now.tzname()}; ISO {now.isoformat()})")


def _now(timezone: str) -> datetime:
    if timezone.lower() == "local":
        return datetime.now().astimezone()
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(f"unknown time zone {timezone!r}; use an IANA name such as "
                        "'UTC', 'America/New_York' or 'Asia/Shanghai'") from None
    return datetime.now(zone)


def make_clock() -> FunctionTool:
    return FunctionTool(current_datetime)
