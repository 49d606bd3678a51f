"""Task sinks: where follow-up tasks for staff go besides the store."""
