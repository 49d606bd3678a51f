"""`python -m engine` is the `nudge` command."""

from engine.cli.main import main

main()
