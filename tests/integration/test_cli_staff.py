"""The staff commands as an administrator runs them: `foyer users/tokens/audit`, on each
registry backend (FOYER_REGISTRY_URL: production points the CLI at PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from core.registry import Registry
from core.registry.people import People

Foyer = Callable[..., subprocess.CompletedProcess[str]]


def foyer_cli(data: Path, registry_url: str) -> Foyer:
    """`foyer ARGS...` in a subprocess, with its own data directory and registry."""
    env = {**os.environ, "FOYER_DATA_DIR": str(data), "FOYER_REGISTRY_URL": registry_url}

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "core.cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    return run


def test_admin_adds_a_user_from_stdin_and_the_password_works(
    tmp_path: Path, registry_url: str
) -> None:
    foyer = foyer_cli(tmp_path, registry_url)
    result = foyer("users", "add", "alice", "--role", "technician", stdin="a long passphrase\n")
    assert result.returncode == 0, result.stderr
    registry = Registry(registry_url)
    try:
        principal = People(registry).authenticate("alice", "a long passphrase")
    finally:
        registry.close()
    assert principal is not None and principal.roles == {"technician"}


def test_a_short_password_is_refused_with_a_clear_message(
    tmp_path: Path, registry_url: str
) -> None:
    foyer = foyer_cli(tmp_path, registry_url)
    result = foyer("users", "add", "bob", "--role", "billing", stdin="short\n")
    assert result.returncode == 1
    assert "at least 10 characters" in result.stderr


def test_a_token_is_printed_once_and_the_audit_log_names_the_cli_user(
    tmp_path: Path, registry_url: str
) -> None:
    foyer = foyer_cli(tmp_path, registry_url)
    foyer("users", "add", "carol", "--role", "admin", stdin="a long passphrase\n")
    token = foyer("tokens", "issue", "carol", "--name", "backup").stdout.strip()
    assert token.startswith("foyer_at_")
    lines = foyer("audit").stdout.splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["action"] for e in entries] == ["user.add", "token.issue"]
    assert all(e["actor"].startswith("cli:") for e in entries)
    assert token not in "\n".join(lines)
