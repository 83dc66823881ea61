# SPDX-License-Identifier: Apache-2.0
"""Where the serving benchmarks leave their figures: ``OUT/<name>.json`` (everything measured) and ``OUT/<name>.md``
(the tables people read), written the same way by every ``make bench-*`` command."""

from __future__ import annotations

import json
from pathlib import Path


def write_figures(out: Path, name: str, report: dict, text: str) -> None:
    """Write ``report`` as ``out/name.json`` and ``text`` as ``out/name.md`` (creating ``out``), and print ``text``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{name}.md").write_text(text if text.endswith("\n") else text + "\n")
    print(text)
