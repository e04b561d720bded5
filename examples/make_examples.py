"""Generate the small, deterministic example data sets shipped with the studio.

The data teaches a tiny, randomly initialised Phi-3 model two things:

* a PLAIN generic assistant style (the warm-up corpus, used to pre-train the
  base model), and
* a PIRATE persona (the LoRA fine-tuning target), in four common formats.

Every persona row is built from one topic and one question template, in
topic-major, template-minor order, so row ``i`` is the same example in every
file. Answers follow one fixed shape so that learning is visible within a
minute on a CPU:

* persona: ``"Ahoy! {Topic} be {fact}, matey."``
* plain:   ``"{Topic} is {fact}."``

Files written (paths relative to the repository root):

* ``examples/pirate_chat.jsonl``              -- {"messages": [...]} per line
* ``examples/pirate_alpaca.json``             -- JSON array of alpaca records
* ``examples/pirate_sharegpt.jsonl``          -- {"conversations": [...]} per line
* ``examples/pirate_prompt_completion.csv``   -- CSV with ``prompt,completion``
* ``examples/pirate_pairs.jsonl``             -- preference pairs: ``prompt``, ``chosen`` (the persona),
  ``rejected`` (the plain answer), for DPO, KTO and ORPO
* ``trainer/assets/warmup_chat.jsonl``        -- plain warm-up chat corpus

The script uses only the standard library and no randomness, so rerunning it
reproduces the files byte for byte::

    python examples/make_examples.py
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, NamedTuple

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = REPO_ROOT / "examples"
ASSETS_DIR = REPO_ROOT / "trainer" / "assets"


class Topic(NamedTuple):
    """A topic: its name inside a question and a short plain fact about it."""

    name: str
    fact: str

    @property
    def title(self) -> str:
        """The name with its first letter capitalised, for the start of an answer."""
        return self.name[:1].upper() + self.name[1:]


TOPICS: tuple[Topic, ...] = (
    Topic("rain", "water falling from the clouds"),
    Topic("the moon", "a rock that circles the earth"),
    Topic("coffee", "a hot drink made from beans"),
    Topic("cats", "small animals that like to sleep"),
    Topic("music", "sound that people make for fun"),
    Topic("the sea", "a big body of salt water"),
    Topic("bread", "food baked from flour and water"),
    Topic("snow", "cold white ice from the sky"),
    Topic("books", "pages of words to read"),
    Topic("the wind", "air that moves across the land"),
    Topic("the sun", "a hot star that gives light"),
    Topic("dogs", "friendly animals that like to play"),
    Topic("trees", "tall plants with wood and leaves"),
    Topic("fire", "hot light that burns wood"),
    Topic("milk", "a white drink from cows"),
    Topic("the sky", "the blue space above us"),
    Topic("birds", "animals with wings that can fly"),
    Topic("fish", "animals that swim in the water"),
    Topic("apples", "round fruit that grows on trees"),
    Topic("tea", "a warm drink made from leaves"),
    Topic("the river", "water that flows to the sea"),
    Topic("mountains", "very tall hills of rock"),
    Topic("the night", "the dark time when we sleep"),
    Topic("stars", "small lights in the night sky"),
    Topic("gold", "a shiny yellow metal"),
    Topic("ships", "big boats that sail the sea"),
    Topic("the beach", "the sandy edge of the sea"),
    Topic("flowers", "bright plants that smell nice"),
    Topic("cheese", "food made from milk"),
    Topic("horses", "big animals that people ride"),
    Topic("clouds", "soft white shapes in the sky"),
    Topic("the forest", "a place with many trees"),
    Topic("winter", "the cold time of the year"),
    Topic("summer", "the warm time of the year"),
    Topic("ice", "water that is frozen hard"),
    Topic("shoes", "things we wear on our feet"),
    Topic("the city", "a big place with many people"),
    Topic("the farm", "a place where food is grown"),
    Topic("cake", "a sweet food for parties"),
    Topic("rice", "small white grains that we eat"),
    Topic("eggs", "food that comes from hens"),
    Topic("the garden", "a place where plants grow"),
    Topic("the island", "land with water all around it"),
    Topic("maps", "pictures that show the way"),
    Topic("the storm", "strong wind and heavy rain"),
    Topic("the ocean", "the biggest water on earth"),
    Topic("the rainbow", "colors in the sky after rain"),
    Topic("salt", "white grains we put on food"),
    Topic("honey", "a sweet food made by bees"),
    Topic("bees", "small insects that make honey"),
    Topic("the clock", "a tool that tells the time"),
    Topic("the door", "a way into a room"),
    Topic("the house", "a place where people live"),
    Topic("school", "a place where children learn"),
    Topic("trains", "cars that run on long rails"),
    Topic("the road", "a path for cars and people"),
    Topic("the lamp", "a thing that gives light"),
    Topic("paper", "thin sheets made from wood"),
    Topic("soup", "warm food eaten with a spoon"),
    Topic("the bridge", "a road that goes over water"),
)

QUESTION_TEMPLATES: tuple[str, ...] = (
    "What do you think about {t}?",
    "Tell me about {t}.",
    "What is {t}?",
    "Can you describe {t}?",
)

# Plain, non-persona answers that use the pirate words, so the warm-up model
# has seen "ahoy", "matey", "be" and friends before the persona fine-tune.
PIRATE_WORD_ROWS: tuple[tuple[str, str], ...] = (
    ("What does a pirate say to a friend?", "A pirate says ahoy to a friend and calls him matey."),
    ("What is a matey?", "A matey is a friend on a ship."),
    ("What does ahoy mean?", "Ahoy is a word sailors use to say hello."),
    ("How do pirates say is?", "Pirates often say be instead of is."),
    ("What is a pirate?", "A pirate is a sailor who robs other ships."),
    ("Where do pirates live?", "Pirates live on ships at sea."),
    ("What do pirates look for?", "Pirates look for gold and treasure."),
    ("Who says ahoy?", "Sailors and pirates say ahoy."),
    ("Who calls people matey?", "Pirates call their friends matey."),
    ("What is a pirate ship?", "A pirate ship is a ship that pirates sail."),
    ("How does a pirate greet the crew?", "A pirate greets the crew with ahoy."),
    ("What is a crew?", "A crew is the group of people who work on a ship."),
    ("What is a captain?", "A captain is the person who leads a ship."),
    ("What is treasure?", "Treasure is gold and other things of great value."),
    ("What is a parrot?", "A parrot is a bright bird that can talk."),
    ("Why do pirates have parrots?", "Many pirates keep a parrot as a pet on the ship."),
    ("What is a sailor?", "A sailor is a person who works on a ship."),
    ("What does matey mean?", "Matey means friend in the way pirates talk."),
    ("Is ahoy a greeting?", "Yes, ahoy is an old greeting used at sea."),
    ("How do pirates talk?", "Pirates say ahoy, call friends matey and say be for is."),
    ("What word do sailors use for hello?", "Sailors use the word ahoy for hello."),
    ("What word do pirates use for friend?", "Pirates use the word matey for friend."),
    ("Do pirates say is or be?", "Pirates often say be where others say is."),
    ("What is a treasure map?", "A treasure map is a map that shows where gold is hidden."),
    ("What is a flag on a pirate ship?", "A pirate flag is black with a white skull."),
    ("Where do pirates hide gold?", "Pirates often hide gold on an island."),
    ("What is a deck?", "A deck is the flat floor of a ship."),
    ("What is a sail?", "A sail is a large cloth that catches the wind."),
    ("What is an anchor?", "An anchor is a heavy hook that holds a ship in place."),
    ("What is a port?", "A port is a place where ships stop."),
    ("What does a pirate drink?", "In old stories a pirate drinks rum."),
    ("How would a pirate say the sea is big?", "A pirate would say the sea be big."),
    ("How would a pirate say hello to a friend?", "A pirate would say ahoy and call the friend matey."),
    ("Are pirates real?", "Yes, pirates were real sailors who robbed ships long ago."),
    ("Why do pirates say ahoy?", "Pirates say ahoy because it is a sailor word for hello."),
    ("What is a pirate song?", "A pirate song is a song sailors sing on a ship."),
    ("What is a cannon?", "A cannon is a big gun on a ship."),
    ("What do pirates call the ocean?", "Pirates often call the ocean the sea."),
    ("Who is a matey?", "A matey is a friend, often a sailor on the same ship."),
    ("Can you say ahoy?", "Yes, ahoy is easy to say. It means hello."),
)

# Small generic rows so the warm-up model looks like a plain assistant.
GENERIC_ROWS: tuple[tuple[str, str], ...] = (
    ("Hello!", "Hello! How can I help you today?"),
    ("Hi!", "Hi! How can I help you today?"),
    ("Good morning!", "Good morning! How can I help you today?"),
    ("How are you?", "I am well, thank you. How can I help you?"),
    ("Thank you!", "You are welcome."),
    ("Thanks for the help.", "You are welcome. I am glad to help."),
    ("Goodbye!", "Goodbye! Have a nice day."),
    ("Who are you?", "I am a helpful assistant."),
    ("Can you help me?", "Yes, I can help you. What do you need?"),
    ("What is 2 plus 3?", "2 plus 3 is 5."),
    ("What is 4 plus 4?", "4 plus 4 is 8."),
    ("What is 1 plus 6?", "1 plus 6 is 7."),
    ("What is 9 minus 2?", "9 minus 2 is 7."),
    ("What is 5 minus 3?", "5 minus 3 is 2."),
    ("What is 3 times 3?", "3 times 3 is 9."),
    ("What is 2 times 5?", "2 times 5 is 10."),
    ("What color is grass?", "Grass is green."),
    ("How many days are in a week?", "There are seven days in a week."),
    ("What day comes after Monday?", "Tuesday comes after Monday."),
    ("How many legs does a dog have?", "A dog has four legs."),
)


def question(template: str, topic: Topic) -> str:
    """Fill a question template with the topic name."""
    return template.format(t=topic.name)


def pirate_answer(topic: Topic) -> str:
    """The persona answer: one fixed pirate shape."""
    return f"Ahoy! {topic.title} be {topic.fact}, matey."


def plain_answer(topic: Topic) -> str:
    """The plain warm-up answer: one fixed neutral shape."""
    return f"{topic.title} is {topic.fact}."


def persona_pairs() -> list[tuple[str, str]]:
    """All (question, pirate answer) pairs, topic-major, template-minor."""
    return [(question(tpl, t), pirate_answer(t)) for t in TOPICS for tpl in QUESTION_TEMPLATES]


def plain_pairs() -> list[tuple[str, str]]:
    """All (question, plain answer) pairs, in the same order as the persona."""
    return [(question(tpl, t), plain_answer(t)) for t in TOPICS for tpl in QUESTION_TEMPLATES]


def chat_record(q: str, a: str) -> dict[str, Any]:
    """A ``{"messages": [...]}`` chat record."""
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def alpaca_record(q: str, a: str) -> dict[str, Any]:
    """An alpaca ``instruction/input/output`` record."""
    return {"instruction": q, "input": "", "output": a}


def sharegpt_record(q: str, a: str) -> dict[str, Any]:
    """A ShareGPT ``{"conversations": [...]}`` record."""
    return {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}


def pair_record(q: str, chosen: str, rejected: str) -> dict[str, Any]:
    """A preference ``prompt/chosen/rejected`` record (TRL's standard preference rows)."""
    return {"prompt": q, "chosen": chosen, "rejected": rejected}


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Write one JSON object per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    report(path, len(records))


def write_json_array(path: Path, records: list[dict[str, Any]]) -> None:
    """Write a pretty-printed JSON array."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    report(path, len(records))


def write_csv(path: Path, pairs: list[tuple[str, str]]) -> None:
    """Write a ``prompt,completion`` CSV file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["prompt", "completion"])
        writer.writerows(pairs)
    report(path, len(pairs))


def report(path: Path, rows: int) -> None:
    """Print a one-line summary of a written file."""
    print(f"wrote {path.relative_to(REPO_ROOT)} ({rows} rows)")


def main() -> None:
    """Generate every example file."""
    persona = persona_pairs()
    write_jsonl(EXAMPLES_DIR / "pirate_chat.jsonl", [chat_record(q, a) for q, a in persona])
    write_json_array(EXAMPLES_DIR / "pirate_alpaca.json", [alpaca_record(q, a) for q, a in persona])
    write_jsonl(EXAMPLES_DIR / "pirate_sharegpt.jsonl", [sharegpt_record(q, a) for q, a in persona])
    write_csv(EXAMPLES_DIR / "pirate_prompt_completion.csv", persona)
    plain = dict(plain_pairs())
    write_jsonl(EXAMPLES_DIR / "pirate_pairs.jsonl", [pair_record(q, a, plain[q]) for q, a in persona])

    warmup = plain_pairs() + list(PIRATE_WORD_ROWS) + list(GENERIC_ROWS)
    write_jsonl(ASSETS_DIR / "warmup_chat.jsonl", [chat_record(q, a) for q, a in warmup])


if __name__ == "__main__":
    main()
