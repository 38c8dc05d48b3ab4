"""The ``musicflow`` command line: a thin layer over the library.

Errors users can cause print one line and exit with code 2; progress goes to stderr and
``--quiet`` silences it. One module per command group; what they share is in ``options``.
"""

from __future__ import annotations

import sys

import click

from musicflow.cli import compose, evaluate, inspect, serve, train
from musicflow.cli.boulanger import benchmark, jsb
from musicflow.cli.data import data
from musicflow.cli.options import Group
from musicflow.cli.style import style


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="musicflow")
def main() -> None:
    """musicflow: symbolic music generation with normalizing flows."""


for command in (data, train.train_cmd, train.calibrate_cmd, evaluate.evaluate_cmd, compose.compose_cmd,
                compose.decode_cmd, compose.continue_cmd, compose.infill_cmd, compose.variations_cmd,
                compose.transfer_cmd, compose.interpolate_cmd, inspect.score_cmd, inspect.classify_cmd,
                inspect.render_cmd, inspect.genres_cmd, inspect.models_cmd, style, serve.serve_cmd, benchmark,
                jsb):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
