"""The simulated world of the end-to-end and replica tests: a cheap model good enough for
easy chat, and only the strong one for hard code."""

from __future__ import annotations

CHEAP, MID, STRONG = "gpt-5-nano", "gpt-5-mini", "gpt-5"
# Mean quality each model delivers, per kind of request.
WORLD = {
    "easy": {CHEAP: 0.90, MID: 0.85, STRONG: 0.95},
    "hard": {CHEAP: 0.15, MID: 0.50, STRONG: 0.95},
}
TYPICAL_LATENCY_MS = {CHEAP: 2500, MID: 4000, STRONG: 12000}
EASY = ["What is the capital of France?", "Say hello to my team in one line.",
        "Suggest a name for a grey cat.", "What day comes after Tuesday?"]
HARD = ("Refactor this python function step by step, handle every edge case and optimize "
        "it; explain the trade-offs of your design.\n```python\ndef parse(rows):\n"
        "    import csv\n    return [r for r in csv.reader(rows)]\n```\n")

# Prompts of two kinds that models treat differently (learned buckets' tests).
FACTS = ["the capital of Australia", "who painted the Mona Lisa", "the largest ocean",
         "the chemical symbol for gold", "the year the Berlin Wall fell", "how many legs a "
         "spider has", "the tallest mountain in Africa", "the boiling point of water"]
PUZZLES = ["five houses stand in a row and the green one is left of the white one",
           "twelve coins, one counterfeit, and three weighings on a balance",
           "two doors, two guards, one of whom always lies",
           "four people cross a bridge at night with one torch",
           "a boat carries two people and nobody may be left alone with the wolf",
           "each one accuses exactly one of the others of lying"]


def easy(i: int) -> str:
    return f"Quick question: {FACTS[i % len(FACTS)]}?"


def hard(i: int) -> str:
    return f"Here is a puzzle: {PUZZLES[i % len(PUZZLES)]}. What is the answer?"
