"""The domain's ``crmflow`` commands (webui/cli.py puts them on the ``crmflow`` command)."""

from __future__ import annotations

from pathlib import Path

import click

from engine.cli import pass_system
from processes.importer import count_rows
from processes.importer import import_customers as run_import
from processes.system import System
from processes.texts import ngettext


@click.command("import-customers")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--by", "by", required=True, help="Username of who imports (recorded on the customers).")
@click.option("--curator", help="Curator of rows that name none.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every row's result to this CSV file.")
@pass_system
def import_customers(system: System, file: Path, by: str, curator: str | None, report_path: Path | None) -> None:
    """Import customers from FILE (.csv, .xlsx, or .vcf from Outlook) with the duplicate check."""
    system.init_db()
    engine = system.engine
    engine.user(by)  # an unknown importer is refused before any work
    if curator:
        engine.user(curator)
    total = count_rows(file)
    with click.progressbar(length=total, label=f"Importing {file.name}", show_pos=True) as bar:
        report = run_import(engine, file, by, curator=curator, progress=bar.update)
    click.echo(str(report.summary()))
    for rejected in report.rejected[:50]:
        click.echo(f"  row {rejected.row} rejected ({rejected.name or 'no name'}): {rejected.reason}")
    if len(report.rejected) > 50:
        more = ngettext("... and %(num)d more rejected row", "... and %(num)d more rejected rows",
                        len(report.rejected) - 50)
        click.echo(f"  {more}" + ("" if report_path else "; use --report FILE for all of them"))
    for matched in report.matched[:20]:
        reasons = ", ".join(map(str, matched.reasons))
        click.echo(f"  row {matched.row} matched customer #{matched.customer_id}: {reasons}")
    if len(report.matched) > 20:
        more = ngettext("... and %(num)d more matched row", "... and %(num)d more matched rows",
                        len(report.matched) - 20)
        click.echo(f"  {more}")
    if report_path:
        report.write_csv(report_path)
        click.echo(f"Report written to {report_path}")


@click.command()
@click.option("--reset", is_flag=True, help="Drop everything in the database first, then load the demo.")
@click.option("--customers", default=300, show_default=True, help="How many customers to create.")
@click.option("--logins", "logins_only", is_flag=True,
              help="Load nothing: print the demo logins that still work (./scripts/run does, on every start).")
@pass_system
def demo(system: System, reset: bool, customers: int, logins_only: bool) -> None:
    """Load a demo company: users in roles, customers, deals at every stage, claims."""
    from processes.demo import DemoRefused, demo_logins, has_data, load_demo, wipe

    engine = system.engine
    system.init_db()
    if logins_only:
        _print_logins(demo_logins(engine))
        return
    if reset:
        wipe(engine)
        click.echo("Database wiped.")
    else:
        problem = has_data(engine)
        if problem:
            raise click.ClickException(f"Refusing to load the demo: {problem}. "
                                       "Use `crmflow demo --reset` to wipe the database and load it again.")
    try:
        users = load_demo(engine.database_url, customers=customers, echo=click.echo)
    except DemoRefused as refused:
        raise click.ClickException(f"Refusing to load the demo: {refused}.") from None
    _print_logins(users)


def _print_logins(users) -> None:
    if not users:
        click.echo("No demo login works any more (the demo users are gone or their passwords changed).")
        return
    click.echo("\nDemo logins (user / password / roles):")
    for user in users:
        click.echo(f"  {user.username:12} {user.password:16} {', '.join(user.roles)}")
