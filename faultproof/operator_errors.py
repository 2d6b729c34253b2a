"""The one error a command or service shows an operator: one line that names the problem and the
fix, exit code 2 (a usage problem, as click's own), never a traceback.

Used by every command's shell (ledger, oracle, agent, the CLI face) for problems of the
environment an operator can fix: a port in use, a missing or readable key, a ledger that is down,
a database another process holds. Protocol refusals keep their reason codes (faultproof.errors).
"""

from __future__ import annotations

import click


class OperatorError(click.ClickException):
    exit_code = 2

    def show(self, file: object = None) -> None:  # one line on stderr, no "Error:" noise twice
        click.echo(f"error: {self.format_message()}", err=True)
