"""`foyer users ...`, `foyer tokens ...`, `foyer audit`: staff accounts from the shell.

Passwords are read from standard input (never from argv, which `ps` shows) and
tokens are printed once.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable

from core.registry import Registry, audit
from core.registry.models import STAFF_ROLES
from core.registry.people import People
from core.settings import Settings

Opener = Callable[[Settings], Registry]


def cli_actor() -> str:
    """Who runs the CLI, for the audit log: the login behind sudo if any."""
    return f"cli:{os.environ.get('SUDO_USER') or getpass.getuser()}"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], opener: Opener) -> None:
    users = sub.add_parser("users", help="staff accounts").add_subparsers(
        required=True, metavar="ACTION"
    )
    add = users.add_parser("add", help="add a staff user; the password is read from stdin")
    add.add_argument("username")
    add.add_argument("--role", action="append", required=True, choices=STAFF_ROLES)
    add.set_defaults(func=lambda a, s: _user_add(a, opener(s)))
    users.add_parser("list", help="list staff users").set_defaults(
        func=lambda a, s: _user_list(opener(s))
    )
    disable = users.add_parser("disable", help="disable a user and end their sessions")
    disable.add_argument("username")
    disable.set_defaults(func=lambda a, s: _user_disable(a, opener(s)))
    tokens = sub.add_parser("tokens", help="API tokens for scripts").add_subparsers(
        required=True, metavar="ACTION"
    )
    issue = tokens.add_parser("issue", help="issue a token acting as USERNAME (printed once)")
    issue.add_argument("username")
    issue.add_argument("--name", required=True, help="what the token is for")
    issue.set_defaults(func=lambda a, s: _token_issue(a, opener(s)))
    revoke = tokens.add_parser("revoke", help="revoke the tokens of USERNAME with --name")
    revoke.add_argument("username")
    revoke.add_argument("--name", required=True)
    revoke.set_defaults(func=lambda a, s: _token_revoke(a, opener(s)))
    log = sub.add_parser("audit", help="print the audit log, newest first (JSON lines)")
    log.add_argument("--target")
    log.add_argument("--limit", type=int, default=50)
    log.set_defaults(func=lambda a, s: _audit(a, opener(s)))


def _read_password() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("password: ")
    return sys.stdin.readline().rstrip("\n")


def _user_add(args: argparse.Namespace, registry: Registry) -> int:
    People(registry).add_user(args.username, _read_password(), args.role, actor=cli_actor())
    print(f"added {args.username} ({', '.join(sorted(set(args.role)))})")
    return 0


def _user_list(registry: Registry) -> int:
    for user in People(registry).list_users():
        state = "disabled" if user["disabled"] else ""
        roles = ",".join(str(r) for r in user["roles"])  # type: ignore[attr-defined]
        print(f"{user['username']:<24} {roles:<32} {state}")
    return 0


def _user_disable(args: argparse.Namespace, registry: Registry) -> int:
    People(registry).disable_user(args.username, actor=cli_actor())
    return 0


def _token_issue(args: argparse.Namespace, registry: Registry) -> int:
    print(People(registry).issue_token(args.username, args.name, actor=cli_actor()))
    return 0


def _token_revoke(args: argparse.Namespace, registry: Registry) -> int:
    count = People(registry).revoke_token(args.username, args.name, actor=cli_actor())
    print(f"revoked {count} token(s)")
    return 0


def _audit(args: argparse.Namespace, registry: Registry) -> int:
    with registry.reading() as session:
        for entry in reversed(audit.entries(session, limit=args.limit, target=args.target)):
            print(json.dumps(entry, ensure_ascii=False))
    return 0
