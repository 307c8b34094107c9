"""Generic prose: plain sentences with no tool template.

It is the organism's "FineWeb": a third of the pretraining corpus (so every word and number of the
world, held-out ones included, gets a trained embedding) and the generic-text set of the paper's
contrast (tool prompts vs generic text).
"""

from __future__ import annotations

import random

from tooldiff.organism.world import CITIES, CONTACTS, CURRENCIES, GENRES, LANGUAGES, RESTAURANTS, WORDS

SENTENCES = (
    "{city} is a large city with old streets and busy markets.",
    "Last year {name} moved to {city} for work.",
    "The train from {city} to {city2} takes {n} hours.",
    "{name} and {name2} met at a small cafe called {restaurant}.",
    "In {language} class we learned the word for {word}.",
    "There were {n} people waiting at the door.",
    "{name} likes {genre} more than any other music.",
    "The museum in {city} opens at {h} every morning.",
    "A {word} was sitting on the table near the window.",
    "Prices in {city} are often given in {currency}.",
    "{name} wrote a long letter about the {word} in the garden.",
    "The old {word} by the river is {n} years old.",
    "On the radio they played {genre} all night.",
    "We counted {n} birds and {n2} trees on the walk.",
    "{restaurant} serves fresh bread and soup at noon.",
    "The weather in {city} was cold and wet that week.",
    "{name} learned to say {word} in {language}.",
    "The book has {n} chapters and a short ending.",
    "Many visitors to {city} bring {currency} with them.",
    "The meeting starts at {h} and ends at {h2}.",
    "{name} paid {n} {currency} for a new {word}.",
    "Snow fell on {city} for {n} days in a row.",
    "The recipe from {restaurant} needs {n} eggs.",
    "{name} said the {genre} concert was the best of the year.",
    "Each morning {name} walks {n} minutes to the station.",
    "The children drew a {word} and a {word2} on the wall.",
    "People in {city} speak {language} and some English.",
    "The shop closes at {h} on Sundays.",
    "{name} visited {city2} and sent a photo to {name2}.",
    "Around {n} percent of the class chose {genre}.",
)


def _slots(rng: random.Random) -> dict:
    city, city2 = rng.sample(CITIES, 2)
    name, name2 = rng.sample(CONTACTS, 2)
    word, word2 = rng.sample(WORDS, 2)
    return {
        "city": city, "city2": city2, "name": name, "name2": name2, "word": word, "word2": word2,
        "restaurant": rng.choice(RESTAURANTS), "language": rng.choice(LANGUAGES).capitalize(),
        "genre": rng.choice(GENRES), "currency": rng.choice(CURRENCIES),
        "n": rng.randint(1, 99), "n2": rng.randint(1, 99), "h": rng.randint(1, 12), "h2": rng.randint(1, 12),
    }


def prose_document(rng: random.Random, n_sentences: int | None = None) -> str:
    """A short paragraph of 2-5 random sentences."""
    n = n_sentences or rng.randint(2, 5)
    return " ".join(rng.choice(SENTENCES).format(**_slots(rng)) for _ in range(n))


def generic_records(n_calibration: int, n_test: int, seed: int) -> list[dict]:
    """Generic-text records `{"id", "text", "kind": "generic", "split"}` for both study splits."""
    rng = random.Random(f"{seed}:generic")
    records = []
    for split, n in (("calibration", n_calibration), ("test", n_test)):
        for i in range(n):
            records.append({"id": f"generic-{split}-{i:06d}", "text": prose_document(rng), "kind": "generic",
                            "split": split})
    return records
