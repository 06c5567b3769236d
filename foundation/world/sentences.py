"""Varied English sentences for synthetic speech, drawn deterministically from an rng.

Scripts feed the TTS voice pool when building the synthetic talking-head world; variety in
sentence shape (statements, questions, exclamations, numbers, lists) gives the animator varied
phone sequences and prosody. Templates × word lists, no data files.
"""

from __future__ import annotations

import numpy as np

WORDS_PER_SECOND = 2.6
"""Typical speaking rate of the pool's voices, used to size scripts (words per second)."""

_SUBJECTS = (
    "my brother", "the teacher", "our neighbour", "a young doctor", "the old fisherman", "my best friend",
    "the pilot", "her grandmother", "the new manager", "a tired student", "the baker", "your cousin",
    "the little girl", "a famous painter", "the mayor", "our team", "the farmer", "my parents",
)
_VERBS = (
    "bought", "painted", "found", "forgot", "borrowed", "cleaned", "described", "fixed", "sold",
    "carried", "photographed", "ordered", "watched", "mentioned", "built", "discovered", "wanted",
)
_OBJECTS = (
    "a blue bicycle", "the wooden boat", "three bottles of milk", "a map of the city", "the broken window",
    "an umbrella", "the whole garden", "a pair of shoes", "the morning paper", "a cup of coffee",
    "the purple kite", "five old books", "a silver watch", "the kitchen table", "a bag of apples",
)
_PLACES = (
    "at the market", "near the river", "in the library", "behind the station", "on the beach",
    "at the airport", "in a small village", "under the bridge", "at the museum", "in the park",
)
_TIMES = (
    "yesterday", "last summer", "every Monday", "this morning", "before lunch", "after the storm",
    "on Friday night", "two weeks ago", "at midnight", "during the holidays",
)
_ADJECTIVES = ("wonderful", "strange", "expensive", "beautiful", "boring", "surprising", "quiet", "huge")
_NUMBERS = ("two", "seven", "twelve", "nineteen", "forty", "a hundred", "three thousand", "sixty five")
_UNITS = ("minutes", "miles", "people", "dollars", "pages", "houses", "days", "photos")
_SPANS = ("minutes", "hours", "days", "weeks")
_QUESTION_WORDS = ("Why", "When", "Where", "How often")

_TEMPLATES = (
    "{Subject} {verb} {object} {place}.",
    "{Time}, {subject} {verb} {object}.",
    "{Question} did {subject} buy {object}?",
    "Did {subject} really see {object} {place}?",
    "It was a {adjective} day, and {subject} {verb} {object}.",
    "We waited {number} {span} {place}, but nobody came.",
    "Honestly, I think {object} looked {adjective}!",
    "{Subject} said that {object} cost {number} {unit}.",
    "Please bring {object}, {object2} and {object3} {time}.",
    "If you ask me, {subject} {verb} {object} {time}.",
    "Wow, that is {adjective}!",
    "There were {number} {unit} {place} {time}.",
)


def make_sentence(rng: np.random.Generator) -> str:
    """One sentence drawn from the templates; the same rng state gives the same sentence."""
    template = _TEMPLATES[rng.integers(len(_TEMPLATES))]
    objects = rng.choice(len(_OBJECTS), size=3, replace=False)

    def pick(words: tuple[str, ...]) -> str:
        return words[rng.integers(len(words))]

    subject, time = pick(_SUBJECTS), pick(_TIMES)
    fields = {
        "subject": subject, "Subject": subject[0].upper() + subject[1:],
        "verb": pick(_VERBS),
        "object": _OBJECTS[objects[0]], "object2": _OBJECTS[objects[1]], "object3": _OBJECTS[objects[2]],
        "place": pick(_PLACES),
        "time": time, "Time": time[0].upper() + time[1:],
        "adjective": pick(_ADJECTIVES),
        "number": pick(_NUMBERS), "unit": pick(_UNITS), "span": pick(_SPANS),
        "Question": pick(_QUESTION_WORDS),
    }
    return template.format(**fields)


def make_script(rng: np.random.Generator, seconds: float) -> str:
    """Sentences joined by spaces, enough for about `seconds` of speech at `WORDS_PER_SECOND`."""
    sentences: list[str] = []
    words = 0
    while not sentences or words < seconds * WORDS_PER_SECOND:
        sentence = make_sentence(rng)
        sentences.append(sentence)
        words += len(sentence.split())
    return " ".join(sentences)
