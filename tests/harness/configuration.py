"""README's configuration table, read as data: the tests hold compose.yaml and the code to it.

A row names one or more variables, who reads them, their defaults and what they mean:

- "used by": services (`frontend`, `worker`, `logger`, `proxy`; `all` is the first three), compose
  files (`compose`, `compose.yaml`, `compose.local.yaml`) or scripts (`scripts/submit`); a service
  marked "(not under compose)" reads the variable, but compose never passes the user's value on.
- "default": one per variable, comma-separated. `required`; `unset` (empty); a literal, in backticks
  or a number (`10^18` is a power of ten), where `<service>` stands for the service's name; anything
  else (`<hostname>/<pid>`, words) is worked out by the code at start. A note in parentheses may follow;
  "(compose: `X`)" in it is the default compose passes when it differs from the code's.
- "meaning": limits in parentheses, "(at least N" or "(N to M" (also "(each at least N"), as the code
  enforces them; "at least N characters" is a length, not a limit on a number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from harness.services import ROOT

SERVICES = ("frontend", "worker", "logger")
REQUIRED = "<required>"
COMPUTED = "<computed>"
NOT_UNDER_COMPOSE = "(not under compose)"

_AT_LEAST = re.compile(r"\((?:each )?at least (\d+)\b(?! characters)")
_RANGE = re.compile(r"\((\d+) to (\d+)\b")


@dataclass(frozen=True)
class Setting:
    name: str
    used_by: tuple[str, ...]
    under_compose: bool
    # The code's default as text (REQUIRED, COMPUTED, or a literal that may hold "<service>").
    default: str
    # What compose passes when the variable is not set (the code's default unless the table says).
    compose_default: str
    minimum: int | None
    maximum: int | None
    meaning: str

    @property
    def services(self) -> tuple[str, ...]:
        """The services (of SERVICES) that read the variable."""
        return tuple(s for s in SERVICES if "all" in self.used_by or s in self.used_by)

    def default_for(self, service: str) -> str:
        return self.default.replace("<service>", service)

    def compose_default_for(self, service: str) -> str:
        if self.compose_default == COMPUTED:
            return ""  # compose passes it empty, and the code works it out
        return self.compose_default.replace("<service>", service)


def same(a: object, b: object) -> bool:
    """Equal as numbers where both are numbers (10.0 == "10"), else as text."""
    try:
        return Decimal(str(a)).normalize() == Decimal(str(b)).normalize()
    except InvalidOperation:
        return str(a) == str(b)


def _cells(line: str) -> list[str]:
    cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
    assert len(cells) == 4, f"a configuration row has 4 cells: {line}"
    return cells


def _split_top_level(text: str) -> list[str]:
    """Split on ", " outside parentheses and backticks."""
    parts, depth, quoted, current = [], 0, False, ""
    for index, char in enumerate(text):
        if char == "`":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and text[index : index + 2] == ", ":
            parts.append(current)
            current = ""
            continue
        current += char
    return [part.strip() for part in [*parts, current]]


def _value(text: str) -> str:
    if text == "required":
        return REQUIRED
    if text.startswith("unset"):
        return ""
    literal = re.fullmatch(r"`([^`]*)`", text)
    if literal:
        value = literal.group(1)
        return COMPUTED if "<" in value.replace("<service>", "") else value
    power = re.fullmatch(r"10\^(\d+)", text)
    if power:
        return str(10 ** int(power.group(1)))
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return text
    return COMPUTED


def _default(text: str) -> tuple[str, str]:
    main, _, note = text.partition(" (")
    default = _value(main.strip())
    compose = re.search(r"compose: `([^`]*)`", note)
    return default, compose.group(1) if compose else default


def configuration_table(readme: Path = ROOT / "README.md") -> list[Setting]:
    text = readme.read_text()
    section = text[text.index("## Configuration\n") :]
    section = section[: section.index("\n## ", 1)]
    settings = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        names_cell, used_cell, default_cell, meaning = _cells(line)
        names = re.findall(r"`([A-Z][A-Z0-9_]*)`", names_cell)
        defaults = _split_top_level(default_cell) if len(names) > 1 else [default_cell]
        assert len(defaults) == len(names), f"one default per variable: {line}"
        under_compose = NOT_UNDER_COMPOSE not in used_cell
        used_by = tuple(_split_top_level(used_cell.replace(NOT_UNDER_COMPOSE, "").strip()))
        minimum = maximum = None
        if match := _RANGE.search(meaning):
            minimum, maximum = int(match.group(1)), int(match.group(2))
        elif match := _AT_LEAST.search(meaning):
            minimum = int(match.group(1))
        for name, cell in zip(names, defaults, strict=True):
            default, compose_default = _default(cell)
            settings.append(
                Setting(name, used_by, under_compose, default, compose_default, minimum, maximum, meaning)
            )
    return settings
