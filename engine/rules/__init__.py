"""rules — the rule language: YAML text → pydantic models, with every problem located.

In: YAML files (rules/*.yaml, rules/segments.yaml, config.yaml). Out: `Campaign`, condition
models, `Config`; `Problem`s at FILE:LINE:COL; the JSON Schema for editors.
May import: engine.core.
"""
