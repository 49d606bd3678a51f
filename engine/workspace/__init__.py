"""workspace — a folder checked as a whole: config, rules, segments, templates, every problem at once.

In: a workspace folder. Out: a `Workspace` (config + campaigns + segments + template
environment) or a `UserInputError` listing every problem.
May import: engine.messages, engine.audience, engine.rules, engine.store, engine.core.
"""
