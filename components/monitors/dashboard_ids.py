"""What Grafana knows a dashboard by, and the JSON it imports: shared by every dashboard the project ships."""

from __future__ import annotations

import hashlib
import json
import re

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

__all__ = ["dashboard_json", "dashboard_uid", "slug"]


def slug(title: str) -> str:
    """``ML model overview`` → ``ml-model-overview``: the ConfigMap key and the source of the uid."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def dashboard_uid(title: str) -> str:
    """A uid that never changes while the title does not, so links and bookmarks survive every deploy.

    >>> dashboard_uid("ML model overview") == hashlib.md5(b"ml-model-overview").hexdigest()
    True
    """
    return hashlib.md5(slug(title).encode(), usedforsecurity=False).hexdigest()


def dashboard_json(builder: dashboard.Dashboard) -> str:
    """The dashboard as Grafana imports it (stable key order, so an unchanged dashboard makes no diff)."""
    return json.dumps(json.loads(JSONEncoder(sort_keys=True).encode(builder.build())), indent=2, sort_keys=True)
