"""``python -m musicflow`` runs the command line."""

from musicflow.cli import main

main(prog_name="musicflow")
