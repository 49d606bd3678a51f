"""Which context a campaign's templates read: delivery skips loading `last` only when no template,
layout or include can read it."""

from __future__ import annotations

from engine.messages.actions import reads
from engine.messages.templates import make_environment
from engine.rules.campaign import Campaign


def campaign(template: str, subject: str = "Hi", title: str | None = None) -> Campaign:
    actions: list[dict] = [{"email": {"template": template, "subject": subject}}]
    if title:
        actions.append({"task": {"queue": "q", "title": title}})
    return Campaign.model_validate(
        {
            "campaign": "probe",
            "schedule": "0 9 * * *",
            "audience": {"attribute": "country", "eq": "US"},
            "actions": actions,
        }
    )


def test_a_read_anywhere_in_the_chain_counts(tmp_path):
    (tmp_path / "layout.html.j2").write_text("<p>{% block body %}{% endblock %} {{ last.purchase }}</p>")
    (tmp_path / "child.html.j2").write_text('{% extends "layout.html.j2" %}{% block body %}Hi{% endblock %}')
    (tmp_path / "plain.html.j2").write_text("<p>Hi {{ customer.first_name }}</p>")
    (tmp_path / "dynamic.html.j2").write_text("{% include customer.attributes.page %}")
    env = make_environment(tmp_path)
    assert reads(env, campaign("child.html.j2"), "last")  # through the layout
    env = make_environment(tmp_path)
    assert not reads(env, campaign("plain.html.j2"), "last")
    env = make_environment(tmp_path)
    assert reads(env, campaign("plain.html.j2", subject="{{ last.purchase.properties.amount }}"), "last")
    env = make_environment(tmp_path)
    assert reads(env, campaign("plain.html.j2", title="{{ last.survey }}"), "last")
    env = make_environment(tmp_path)
    assert reads(env, campaign("dynamic.html.j2"), "last")  # computed at run time: assume it does
