"""Small file helpers shared by the commands: atomic JSON and recorded settings."""

import json
import os


def write_json(path: str, value, sort_keys: bool = True) -> None:
    """Writes `value` as JSON atomically (PATH.tmp, then rename)."""
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, indent=1, sort_keys=sort_keys)
    os.replace(path + ".tmp", path)


def settings_changes(path: str, settings: dict) -> str | None:
    """How `settings` differ from those recorded at `path` by an earlier run:
    None when there is no record or it is the same, else 'key: old then, new
    now, ...' for every differing key."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        found = json.load(f)
    if found == settings:
        return None
    changed = sorted(k for k in set(found) | set(settings) if found.get(k) != settings.get(k))
    return ", ".join(f"{k}: {found.get(k)!r} then, {settings.get(k)!r} now" for k in changed)
