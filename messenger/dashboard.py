"""The admin page's numbers: hourly counts of analytics events, through the Analytics Engine SQL API.

A worker cannot query its dataset through the binding (writes only); it calls the SQL API over HTTP
like any client: `POST <ANALYTICS_SQL_URL>` with the SQL as the body and `ANALYTICS_SQL_TOKEN` as
bearer.  On Cloudflare the URL is `https://api.cloudflare.com/client/v4/accounts/<account id>/
analytics_engine/sql` and the token an API token with "Account Analytics: Read".  Without the var the
worker asks its own origin, which under `cfemu dev` is the dev server that implements the same API.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from datetime import datetime, timezone
from urllib.parse import urlsplit

from workers import fetch

__all__ = ["SERIES", "HOUR_MS", "DEFAULT_TIMEOUT_MS", "sql_url", "sql_timeout_ms", "hourly_sql", "hourly"]

# series name on the page -> analytics event (blob1)
SERIES = {"logins": "login_success", "loginFailures": "login_failure", "messages": "message_sent",
          "rateLimited": "rate_limited", "aiInvocations": "ai_invocation"}
HOUR_MS = 3_600_000
DEFAULT_DATASET = "messenger_events"
DEFAULT_TIMEOUT_MS = 10_000  # how long the SQL API may take (var ANALYTICS_SQL_TIMEOUT_MS)


class StatsUnavailable(Exception):
    """The SQL API could not be reached or refused the query (the message says which)."""


def sql_url(env, request_url: str) -> str:
    """ANALYTICS_SQL_URL, or the SQL API path on the origin this request came to (cfemu dev)."""
    configured = str(getattr(env, "ANALYTICS_SQL_URL", "") or "")
    if configured:
        return configured
    origin = urlsplit(request_url)
    return f"{origin.scheme}://{origin.netloc}/client/v4/accounts/local/analytics_engine/sql"


def sql_timeout_ms(env) -> int:
    """ANALYTICS_SQL_TIMEOUT_MS when it is a positive whole number, else 10 000."""
    try:
        value = int(str(getattr(env, "ANALYTICS_SQL_TIMEOUT_MS", "") or DEFAULT_TIMEOUT_MS))
    except ValueError:
        return DEFAULT_TIMEOUT_MS
    return value if value >= 1 else DEFAULT_TIMEOUT_MS


def _dataset(env) -> str:
    name = str(getattr(env, "ANALYTICS_DATASET", "") or DEFAULT_DATASET)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
        raise StatsUnavailable("ANALYTICS_DATASET is not a dataset name")
    return name


def hourly_sql(dataset: str, hours: int) -> str:
    """Counts per hour and event (sampling-aware: SUM(_sample_interval)) over the last `hours` hours."""
    events = ", ".join(f"'{e}'" for e in SERIES.values())
    return (f"SELECT toStartOfInterval(timestamp, INTERVAL '1' HOUR) AS hour, blob1 AS event, "
            f"SUM(_sample_interval) AS n FROM {dataset} "
            f"WHERE timestamp > NOW() - INTERVAL '{int(hours)}' HOUR AND blob1 IN ({events}) "
            f"GROUP BY hour, event ORDER BY hour")


def _hour_ms(text: str) -> int | None:
    try:
        return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp() * 1000)
    except (TypeError, ValueError):
        return None


def _count(value) -> int | None:
    """A row's count (the SQL API answers numbers, as JSON numbers or strings); None when it is not one."""
    if value is None:
        return 0
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) and number >= 0 else None


async def hourly(env, request_url: str, hours: int, now_ms: int) -> dict:
    """{"hours": [ISO hour starts], "series": {name: [count per hour]}, "source": "cfemu dev"|"configured"}."""
    sql = hourly_sql(_dataset(env), hours)
    token = str(getattr(env, "ANALYTICS_SQL_TOKEN", "") or "local")
    url = sql_url(env, request_url)
    timeout_ms = sql_timeout_ms(env)

    async def ask() -> tuple[int, str]:
        resp = await fetch(url, method="POST", body=sql,
                           headers={"authorization": f"Bearer {token}", "content-type": "text/plain"})
        return resp.status, await resp.text()

    try:
        # An endpoint that accepts the connection and never answers must not hold the request open.
        status, text = await asyncio.wait_for(ask(), timeout_ms / 1000)
    except asyncio.TimeoutError:
        raise StatsUnavailable(f"the Analytics Engine SQL API at {url} did not answer within {timeout_ms} ms") from None
    except Exception as error:
        raise StatsUnavailable(f"the Analytics Engine SQL API at {url} could not be reached ({error})") from None
    if status != 200:
        raise StatsUnavailable(f"the Analytics Engine SQL API answered {status}: {text.strip()[:200]}")
    try:
        rows = json.loads(text)["data"]
    except (ValueError, KeyError, TypeError):
        raise StatsUnavailable("the Analytics Engine SQL API did not answer JSON") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and _count(r.get("n")) is not None for r in rows):
        raise StatsUnavailable("the Analytics Engine SQL API did not answer rows of hour, event and count")
    last = now_ms - now_ms % HOUR_MS
    starts = [last - (hours - 1 - i) * HOUR_MS for i in range(hours)]
    index = {start: i for i, start in enumerate(starts)}
    by_event = {event: name for name, event in SERIES.items()}
    series = {name: [0] * hours for name in SERIES}
    for row in rows:
        slot = index.get(_hour_ms(row.get("hour")))
        name = by_event.get(row.get("event"))
        if slot is not None and name is not None:
            series[name][slot] += _count(row.get("n"))
    hours_iso = [datetime.fromtimestamp(s / 1000, timezone.utc).strftime("%Y-%m-%dT%H:00Z") for s in starts]
    source = "configured" if getattr(env, "ANALYTICS_SQL_URL", None) else "same origin"
    return {"hours": hours_iso, "series": series, "source": source}
