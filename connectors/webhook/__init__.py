"""The webhook channel: an HTTP POST of a rendered JSON body, signed, idempotent by delivery id."""
