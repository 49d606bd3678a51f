"""core — the vocabulary every stage shares.

In: nothing. Out: the error hierarchy (`errors`), StrEnums for delivery states and plan outcomes
(`status`), the one UTC conversion (`clock`), durations, scalar parsing (`values`) and the
allow-list of customer fields (`fields`).
May import: the standard library only — nothing else of ours.
"""
