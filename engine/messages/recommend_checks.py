"""Calls of `recommend(...)` in a template checked at validate time, where their arguments are
written as literals: a misspelt strategy or an `n` out of range is found before the first send."""

from __future__ import annotations

from jinja2 import nodes

from engine.audience.recommend import STRATEGIES, call_problem

PARAMETERS = ("strategy", "n", "exclude_bought")


def recommend_problems(tree: nodes.Template) -> list[tuple[int, str]]:
    """(line, message) for each call of `recommend` whose literal arguments are wrong. Arguments
    computed at run time are checked when the template renders."""
    found = []
    for call in tree.find_all(nodes.Call):
        if not (isinstance(call.node, nodes.Name) and call.node.name == "recommend"):
            continue
        given = dict(zip(PARAMETERS, call.args, strict=False))
        given.update((keyword.key, keyword.value) for keyword in call.kwargs)
        unknown = sorted(set(given) - set(PARAMETERS))
        if len(call.args) > len(PARAMETERS) or unknown or call.dyn_args or call.dyn_kwargs:
            extra = f" (not {', '.join(unknown)})" if unknown else ""
            found.append((call.lineno, f"recommend takes (strategy, n=3, exclude_bought=365d){extra}"))
            continue
        if "strategy" not in given:
            found.append((call.lineno, f"recommend needs a strategy: one of {', '.join(STRATEGIES)}"))
            continue
        literal = {key: value.value for key, value in given.items() if isinstance(value, nodes.Const)}
        problem = call_problem(
            literal.get("strategy", STRATEGIES[0]), literal.get("n", 3), literal.get("exclude_bought")
        )
        if problem is not None:
            found.append((call.lineno, problem))
    return found
