"""Database rows -> the JSON objects of PROTOCOL.md."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any


def rfc3339(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def notification(row: Mapping[str, Any]) -> dict[str, Any]:
    data = row["data"]
    return {
        "id": row["id"],
        "kind": row["kind"],
        "title": row["title"],
        "body": row["body"],
        "priority": row["priority"],
        "action_url": row["action_url"],
        "data": json.loads(data) if isinstance(data, str) else data,
        "created_at": rfc3339(row["created_at"]),
        "read_at": rfc3339(row["read_at"]),
    }


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
