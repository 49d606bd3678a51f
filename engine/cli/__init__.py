"""cli — the `nudge` command: parse arguments, call one library function, render the result.

In: argv. Out: text on stdout, problems on stderr, exit codes 0/1/2.
`main` assembles the group from the command modules; they import `common` and `render`,
never `main` (imports point down). Only this package prints or exits.
May import: everything in engine.
"""
