"""Data sources for `nudge import`, registered by file extension under the `nudge.sources` entry points."""
