"""The staff commands as an administrator runs them: `foyer users/tokens/audit`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.registry import Registry
from core.registry.people import People


def _foyer(data: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FOYER_DATA_DIR": str(data)}
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_admin_adds_a_user_from_stdin_and_the_password_works(tmp_path: Path) -> None:
    result = _foyer(
        tmp_path, "users", "add", "alice", "--role", "technician", stdin="a long passphrase\n"
    )
    assert result.returncode == 0, result.stderr
    registry = Registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    try:
        principal = People(registry).authenticate("alice", "a long passphrase")
    finally:
        registry.close()
    assert principal is not None and principal.roles == {"technician"}


def test_a_short_password_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    result = _foyer(tmp_path, "users", "add", "bob", "--role", "billing", stdin="short\n")
    assert result.returncode == 1
    assert "at least 10 characters" in result.stderr


def test_a_token_is_printed_once_and_the_audit_log_names_the_cli_user(tmp_path: Path) -> None:
    _foyer(tmp_path, "users", "add", "carol", "--role", "admin", stdin="a long passphrase\n")
    token = _foyer(tmp_path, "tokens", "issue", "carol", "--name", "backup").stdout.strip()
    assert token.startswith("foyer_at_")
    lines = _foyer(tmp_path, "audit").stdout.splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["action"] for e in entries] == ["user.add", "token.issue"]
    assert all(e["actor"].startswith("cli:") for e in entries)
    assert token not in "\n".join(lines)
