"""`python -m engine` is the `nudge` command."""

from .cli import main

main()
