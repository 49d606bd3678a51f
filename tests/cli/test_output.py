"""JSON as the CLI writes it: the same data back, indented for people, long id lists on one line."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

from engine.cli.output import write_json


def test_json_output_reads_back_as_the_same_data_with_lists_of_ids_on_one_line():
    data = {
        "campaigns": [
            {
                "campaign": "lapsed-buyers",
                "customers": ["c1", 'quote " and \\ back', "雪", "\x00nul"],
                "held_out": [],
                "excluded": {"no_consent": 3},
                "at": datetime(2026, 6, 1, 9, tzinfo=timezone.utc),
            }
        ],
        # strings that look like the writer's own placeholders stay what they are
        "tricky": ["\x000\x00", "\\u00000\\u0000"],
        "mixed": [1, 2.5, None, True, "x"],
    }
    out = io.StringIO()
    write_json(data, out)
    text = out.getvalue()

    expected = {**data, "campaigns": [{**data["campaigns"][0], "at": "2026-06-01T09:00:00+00:00"}]}
    assert json.loads(text) == expected
    assert '  "campaigns": [\n    {\n      "campaign": "lapsed-buyers",' in text  # indented for people
    assert '"customers": ["c1", "quote \\" and \\\\ back", "雪", "\\u0000nul"],' in text  # one line
    assert text.endswith("}\n")
