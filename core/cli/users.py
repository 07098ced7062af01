"""`defectlens user add|list|reset-password|set-email`: accounts from the server's shell."""

from __future__ import annotations

from typing import Annotated

import typer

from core.auth import accounts, permissions
from core.cli.common import JsonOpt, emit_json, fail, open_database
from db.engine import Database
from db.queries.users import UserInfo

app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)


@app.command("add")
def user_add(
    name: str,
    role: Annotated[str, typer.Option(help="viewer, reviewer, engineer or admin")],
    email: Annotated[str | None, typer.Option(help="E-mail for single sign-on.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a user with a random password (printed once)."""
    _, db = open_database()
    info, password = accounts.create_user(db, permissions.SYSTEM, name, role, email=email)
    if as_json:
        emit_json(
            {
                "id": info.id,
                "username": info.username,
                "role": info.role.value,
                "password": password,
            }
        )
    else:
        typer.echo(f"added {info.role.value} '{info.username}' with password: {password}")


@app.command("list")
def user_list(as_json: JsonOpt = False) -> None:
    """List user accounts."""
    _, db = open_database()
    rows = [
        {
            "id": u.id,
            "username": u.username,
            "role": u.role.value,
            "active": u.active,
            "email": u.email,
        }
        for u in accounts.list_users(db, permissions.SYSTEM)
    ]
    if as_json:
        emit_json({"users": rows})
        return
    for r in rows:
        state = "" if r["active"] else " (inactive)"
        typer.echo(f"{r['id']:>4}  {r['username']:<24} {r['role']}{state}")


def _named(db: Database, name: str) -> UserInfo:
    for u in accounts.list_users(db, permissions.SYSTEM):
        if u.username.lower() == name.lower():
            return u
    raise fail(f"no user named {name!r}")


@app.command("reset-password")
def user_reset_password(name: str, as_json: JsonOpt = False) -> None:
    """Give a user a new random password (printed once); the way back in for a lost admin."""
    _, db = open_database()
    match = [_named(db, name)]
    password = accounts.reset_password(db, permissions.SYSTEM, match[0].id)
    if as_json:
        emit_json({"username": match[0].username, "password": password})
    else:
        typer.echo(f"new password for '{match[0].username}': {password}")


@app.command("set-email")
def user_set_email(
    name: str,
    email: Annotated[str, typer.Argument(help="The new address; '' for none.")],
    as_json: JsonOpt = False,
) -> None:
    """Set the e-mail single sign-on maps to this user; a changed address unlinks the SSO
    identity the account was bound to, so the next SSO login binds anew."""
    _, db = open_database()
    info = accounts.set_email(db, permissions.SYSTEM, _named(db, name).id, email)
    if as_json:
        emit_json({"username": info.username, "email": info.email})
    else:
        typer.echo(f"'{info.username}' e-mail: {info.email or '(none)'}")
