"""Optional notifications: the run's one-line JSON summary, POSTed to the spec's
`notify.webhook` on every outcome (pushed, not blessed, failed, refused).

A notification that cannot be delivered is a warning: it never changes the
run's outcome or exit code."""
from __future__ import annotations

import json
import urllib.request
from typing import Dict, Optional


def post_summary(webhook: str, summary: Dict, timeout_seconds: float = 10) -> Optional[str]:
    """POSTs `summary` as JSON; returns None when delivered, else why not."""
    request = urllib.request.Request(webhook, data=json.dumps(summary).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "imagepipe"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
            if response.status >= 300:
                return f"HTTP {response.status}"
    except Exception as exc:  # network, DNS, HTTP errors: all reported the same way
        return f"{type(exc).__name__}: {exc}"
    return None
