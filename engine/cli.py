"""The engine's ``crmflow`` commands: schema, processes, users, instances and work items,
the worker, escalation and the outbox.

``command_group(open_system)`` puts them on a click group whose commands work on the
system ``open_system()`` builds: crmflow's composition root (``processes.system``), so a
work item completed here updates its deal exactly as one completed in the web UI. The
``crmflow`` command itself is assembled in ``webui.cli`` with the domain's and the web
UI's commands.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import update_wrapper
from pathlib import Path
from typing import Protocol

import click

from engine.bpmn.validation import BpmnValidationError
from engine.deadlines.escalation import EscalationService
from engine.errors import CrmflowError
from engine.outbox.webhooks import WebhookSettings
from engine.runtime import Engine
from engine.texts import _, ngettext


class OpenedSystem(Protocol):
    """What the commands work on: the engine with its services (``processes.system.System``)."""

    engine: Engine
    escalation: EscalationService
    webhooks: WebhookSettings | None

    def init_db(self) -> None: ...

    def dispose(self) -> None: ...


def _system(ctx: click.Context) -> OpenedSystem:
    root = ctx.find_root()
    if "crmflow.system" not in root.meta:
        root.meta["crmflow.system"] = root.with_resource(_Closing(root.obj))
    return root.meta["crmflow.system"]


def pass_system(command):
    """The command gets the opened system as its first argument (opened once, on first use)."""

    @click.pass_context
    def with_system(ctx: click.Context, *args, **kwargs):
        return ctx.invoke(command, _system(ctx), *args, **kwargs)

    return update_wrapper(with_system, command)


def pass_engine(command):
    """The command gets the opened system's engine as its first argument."""

    @click.pass_context
    def with_engine(ctx: click.Context, *args, **kwargs):
        return ctx.invoke(command, _system(ctx).engine, *args, **kwargs)

    return update_wrapper(with_engine, command)


class CrmflowGroup(click.Group):
    """Turns the engine's deliberate errors into one clear line and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BpmnValidationError as error:
            for problem in error.problems:
                click.echo(str(problem), err=True)
            ctx.exit(1)
        except (CrmflowError, ValueError) as error:
            click.echo(f"Error: {error}", err=True)
            ctx.exit(1)


class _Closing:
    def __init__(self, factory: Callable[[], OpenedSystem]):
        self.factory = factory

    def __enter__(self) -> OpenedSystem:
        self.system = self.factory()
        return self.system

    def __exit__(self, *exc_info) -> None:
        self.system.dispose()


@click.group(cls=CrmflowGroup)
def cli() -> None:
    """crmflow: sales and claims processes on BPMN.

    The database comes from CRMFLOW_DATABASE_URL (default: a SQLite file under ./instance/).
    """


@cli.command("init-db")
@pass_system
def init_db(system: OpenedSystem) -> None:
    """Create the database schema, or upgrade it to this version."""
    system.init_db()
    click.echo(f"Database ready: {system.engine.db.url.render_as_string(hide_password=True)}")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@pass_engine
def validate(engine: Engine, paths: tuple[Path, ...]) -> None:
    """Check BPMN/DMN files (or directories of them) without deploying. Exit 1 on errors."""
    problems = engine.validate(paths)
    for problem in problems:
        click.echo(str(problem), err=problem.severity == "error")
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        click.echo(str(ngettext("%(num)d error.", "%(num)d errors.", len(errors))), err=True)
        sys.exit(1)
    click.echo(str(_("OK: no errors.")) + (" " + str(ngettext("%(num)d warning.", "%(num)d warnings.", len(problems)))
                                           if problems else ""))


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--by", "deployed_by", help="Who deploys (recorded with the version).")
@pass_engine
def deploy(engine: Engine, paths: tuple[Path, ...], deployed_by: str | None) -> None:
    """Deploy the executable processes of BPMN/DMN files; changed content becomes a new version."""
    for result in engine.deploy(paths, deployed_by=deployed_by):
        state = "deployed" if result.created else "unchanged"
        click.echo(f"{result.key}: version {result.version} ({state})")


@cli.group()
def users() -> None:
    """Manage users."""


@users.command("add")
@click.argument("username")
@click.option("--name", "display_name", help="Full name shown in the UI.")
@click.option("--email")
@click.option("--role", "roles", multiple=True, default=["employee"], show_default=True,
              type=click.Choice(["employee", "manager", "designer", "admin"]))
@click.option("--group", "groups", multiple=True, help="Group (department, team) to join; created if missing.")
@click.option("--manager", help="Username of the user's manager.")
@pass_engine
def users_add(engine: Engine, username: str, display_name, email, roles, groups, manager) -> None:
    """Add a user."""
    known = {group.name for group in engine.groups()}
    for group in groups:
        if group not in known:
            engine.add_group(group)
    user = engine.add_user(username, display_name, email=email, roles=list(roles), groups=list(groups),
                           manager=manager)
    click.echo(f"Added {user.username} ({', '.join(sorted(user.role_set))}).")


@users.command("list")
@pass_engine
def users_list(engine: Engine) -> None:
    """List users with their roles and groups."""
    for user in engine.users():
        groups = ", ".join(sorted(g.name for g in user.groups)) or "-"
        click.echo(f"{user.username:20} {user.display_name:30} {','.join(sorted(user.role_set)):24} {groups}")


@cli.command()
@click.argument("key")
@click.option("--data", default="{}", help="Start variables as a JSON object.")
@click.option("--by", "started_by", help="Username of who starts it.")
@click.option("--business-key", help="Your reference for the instance (deal or claim number).")
@pass_engine
def start(engine: Engine, key: str, data: str, started_by, business_key) -> None:
    """Start an instance of the latest version of process KEY."""
    instance = engine.start(key, _json_object(data), started_by=started_by, business_key=business_key)
    click.echo(f"Started instance {instance.id} of {key} (status {instance.status}).")
    for item in engine.work_items(instance_id=instance.id):
        click.echo(f"  work item {item.id}: {item.name} -> {_owner(item)}")


@cli.command()
@click.option("--user", help="Only the items of this user: assigned to them, and their queue.")
@click.option("--all", "show_all", is_flag=True, help="Completed and cancelled items too.")
@pass_engine
def tasks(engine: Engine, user: str | None, show_all: bool) -> None:
    """List open work items, soonest deadline first."""
    status = None if show_all else "open"
    if user:
        items = engine.work_items(assignee=user, status=status) + engine.work_items(queue_of=user, status=status)
    else:
        items = engine.work_items(status=status)
    now = engine.clock()
    for item in items:
        due = item.due_at.strftime("%Y-%m-%d %H:%M") if item.due_at else "no deadline"
        late = " OVERDUE" if item.due_at and item.due_at < now and item.status == "open" else ""
        click.echo(f"{item.id:6}  v{item.version:<3} {item.status:9} {item.name[:40]:40} "
                   f"{_owner(item):24} {due}{late}  (instance {item.instance_id})")
    if not items:
        click.echo("No work items.")


@cli.command()
@click.argument("item", type=int)
@click.option("--user", required=True, help="Who completes it.")
@click.option("--data", default="{}", help="The form's values as a JSON object.")
@click.option("--expected-version", type=int, help="Refuse if the item changed since this version.")
@pass_engine
def complete(engine: Engine, item: int, user: str, data: str, expected_version) -> None:
    """Complete work item ITEM with the values of its form."""
    done = engine.complete(item, _json_object(data), user, expected_version=expected_version)
    click.echo(f"Completed work item {done.id} ({done.name}).")
    for next_item in engine.work_items(instance_id=done.instance_id):
        click.echo(f"  next: work item {next_item.id}: {next_item.name} -> {_owner(next_item)}")


@cli.command()
@click.option("--poll", default=1.0, show_default=True, help="Seconds between checks for due timers and rungs.")
@click.option("--sweep-interval", default=30.0, show_default=True, help="Seconds between safety sweeps.")
@click.option("--outbox-interval", default=5.0, show_default=True, help="Seconds between e-mail sends.")
@click.option("--run-for", type=float, help="Stop after this many seconds (default: until SIGTERM/Ctrl-C).")
@pass_system
def worker(system: OpenedSystem, poll: float, sweep_interval: float, outbox_interval: float, run_for) -> None:
    """Run the scheduler alone: BPMN timers, escalations, e-mail. Several may run at once."""
    from engine.logs import configure_logging
    from engine.scheduling.scheduler import run_worker

    configure_logging()
    click.echo(f"Worker {os.getpid()} on {system.engine.db.url.render_as_string(hide_password=True)}; "
               "stop with SIGTERM or Ctrl-C.")
    run_worker(system.engine, system.escalation, webhooks=system.webhooks, run_for=run_for, poll=poll,
               sweep_interval=sweep_interval, outbox_interval=outbox_interval)
    click.echo(f"Worker {os.getpid()} stopped.")


@cli.command()
@pass_system
def escalate(system: OpenedSystem) -> None:
    """Run one escalation sweep now, and send the e-mail it wrote if SMTP is configured."""
    from engine.outbox.notifications import OutboxSender, SmtpSettings

    result = system.escalation.sweep()
    levels = ", ".join(f"{level}: {count}" for level, count in sorted(result.by_level.items())) or "none due"
    click.echo(f"Escalated {result.fired} ({levels}); skipped {result.skipped}; cancelled {result.cancelled}.")
    smtp = SmtpSettings.from_environment()
    if smtp is not None:
        counts = OutboxSender(system.engine, smtp).send_due()
        click.echo(f"E-mail: {counts['sent']} sent, {counts['retried']} to retry, {counts['failed']} failed.")


@cli.command()
@click.option("--status", type=click.Choice(["pending", "sending", "sent", "failed", "uncertain"]),
              help="Only messages in this state.")
@click.option("--resend", "resend_id", type=int, help="Send this failed or uncertain message (again).")
@pass_engine
def outbox(engine: Engine, status: str | None, resend_id: int | None) -> None:
    """List the e-mail outbox, newest first; or resend a failed or uncertain message."""
    from engine.outbox.notifications import outbox_messages, resend

    if resend_id is not None:
        message = resend(engine, resend_id)
        click.echo(f"Outbox message {message.id} to {message.recipient} will be sent again.")
        return
    messages = outbox_messages(engine, status)
    for message in messages:
        attempts = ngettext("%(num)d attempt", "%(num)d attempts", message.attempts)
        click.echo(f"{message.id:6}  {message.status:9} {attempts!s:11} {message.recipient:30} "
                   f"{message.subject[:50]}  {message.result or ''}")
    if not messages:
        click.echo("No messages.")


def _owner(item) -> str:
    if item.assignee is not None:
        return item.assignee.username
    names = [f"group:{g}" for g in item.candidate_groups] + item.candidate_users
    return ", ".join(names) or "unassigned"


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as problem:
        raise click.BadParameter(f"not valid JSON: {problem}") from None
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object, e.g. '{\"amount\": 1000}'")
    return value


def command_group(open_system: Callable[[], OpenedSystem], commands: list[click.Command]) -> click.Group:
    """The ``crmflow`` command: the engine's commands and ``commands``, on the system that
    ``open_system()`` builds (once, when a command first needs it)."""
    return CrmflowGroup(name="crmflow", commands={**cli.commands, **{c.name: c for c in commands}},
                        help=cli.help, context_settings={"obj": open_system})
