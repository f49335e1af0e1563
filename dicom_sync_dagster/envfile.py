"""The one rule for ``.env``: the file in the working folder wins over the environment.

That is the rule Dagster's own CLI applies (`dagster dev`, `dagster api ...` load ``.env`` over
the environment before our code runs, so a value set in both reaches the code location from the
file); `dicom-sync` applies the same rule, so both read the same values.
"""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values

ENV_FILE = ".env"


def load_dotenv(folder: Path) -> list[str]:
    """Load ``folder/.env`` into ``os.environ``, over what is set; returns the names of the
    variables whose environment value the file replaced (to say so, values never shown)."""
    path = folder / ENV_FILE
    if not path.is_file():
        return []
    replaced = []
    for key, value in dotenv_values(path).items():
        if value is None:
            continue
        if key in os.environ and os.environ[key] != value:
            replaced.append(key)
        os.environ[key] = value
    return replaced
