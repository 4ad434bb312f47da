"""BABILong data (Kuratov et al. 2024): reading the published sets, and generating qa1-qa3 offline.

BABILong hides the facts of a bAbI task (Weston et al. 2015) in long background text and asks a
question about them. Every record has three fields: `input` (the facts among the background
sentences), `question` and `target` (one word). The published sets (Hugging Face
`RMT-team/babilong`, `RMT-team/babilong-1k-samples`) are organised as configs by length ("0k",
"1k", ... "128k", ...) and splits by task ("qa1" ... "qa20").

- `read_babilong(source, tasks, lengths)`: a local folder laid out as `FOLDER/<length>/<task>.json`
  (a list of records, or columns), `.jsonl` (one record a line) or `.parquet` (needs pandas and
  pyarrow); a single such file; or `hf:<dataset name>` through `datasets` (which downloads, so it
  fails offline: save the set elsewhere with `ds.to_json("FOLDER/<length>/<task>.jsonl")`).
- `generate(task, tokenizer, length, seed)`: a fresh instance of qa1 (single supporting fact),
  qa2 (two supporting facts) or qa3 (three supporting facts), drawn from the classic bAbI vocabulary
  by simulating a small world, with its facts hidden in background text as BABILong does: the facts
  keep their order and go between background sentences, which run on until the input holds
  `length` tokens (never more, unless the facts alone are longer; length 0 is BABILong's "0k":
  the facts alone).

In the generated text an object picked up or dropped is "there", as in bAbI ("Mary got the milk there.").
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from infini_attention.data.haystack import SENTENCE_END, RepeatedFiller, TextHaystack, get_haystack
from infini_attention.data.tokenizers import Tokenizer
from infini_attention.utils import format_count, parse_count

TASKS = tuple(f"qa{i}" for i in range(1, 21))  # BABILong's splits
GENERATED_TASKS = ("qa1", "qa2", "qa3")
FIELDS = ("input", "question", "target")
SUFFIXES = (".json", ".jsonl", ".parquet")

# the classic bAbI vocabulary
NAMES = ("Mary", "John", "Daniel", "Sandra")
PLACES = ("bathroom", "hallway", "garden", "office", "bedroom", "kitchen")
OBJECTS = ("football", "apple", "milk")
MOVES = ("moved to", "went to", "journeyed to", "travelled to", "went back to")
GETS = ("picked up", "got", "grabbed", "took")
DROPS = ("dropped", "discarded", "put down", "left")

FACTS = {"qa1": (2, 10), "qa2": (4, 14), "qa3": (6, 20)}  # facts per story, drawn uniformly in [lo, hi]


@dataclass
class Record:
    """One question, with BABILong's three fields and where it came from."""

    input: str  # the facts hidden among background sentences
    question: str
    target: str  # one word
    task: str = ""  # qa1 ... qa20
    length: str = ""  # the config ("4k") of a published set, or the generator's token count ("4K", "1000")
    facts: list[str] | None = None  # the generator's facts, in the order they appear in `input`
    seed: int | None = None  # the generator's seed for this instance


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: BABILong's tasks are qa1 ... qa20")
    return task


def length_value(label: str) -> float:
    """A length label as a number, to sort by: '0k' -> 0, '4k' -> 4096, '1000' -> 1000, else infinity."""
    text = str(label).strip().lower()
    if text in ("0", "0k"):
        return 0
    try:
        return parse_count(text)
    except ValueError:
        return float("inf")


def parse_length(text: str) -> int:
    """A generator length in tokens: '0' or '0k' (the facts alone), '1000', '4K' (= 4096)."""
    return 0 if str(text).strip().lower() in ("0", "0k") else parse_count(text)


def length_label(n: int) -> str:
    return "0k" if n == 0 else format_count(n)


# ---------------------------------------------------------------------------------------------
# reading the published sets


def read_babilong(source: str | Path, tasks: list[str] | None = None, lengths: list[str] | None = None) -> list[Record]:
    """Every record of `tasks` x `lengths` (default: all found) from a folder, a file or `hf:<name>`."""
    for task in tasks or ():
        check_task(task)
    if str(source).startswith("hf:"):
        return _read_hub(str(source)[3:], tasks, lengths)
    path = Path(source).expanduser()
    if path.is_file():
        return _read_single_file(path, tasks, lengths)
    if not path.is_dir():
        raise ValueError(f"{source} does not exist (give a folder FOLDER/<length>/<task>.jsonl, a file or hf:<name>)")
    return _read_folder(path, tasks, lengths)


def _task_files(folder: Path) -> dict[str, Path]:
    files = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix in SUFFIXES and p.stem in TASKS:
            if p.stem in files:
                raise ValueError(f"{folder} holds two files for {p.stem}: {files[p.stem].name} and {p.name}")
            files[p.stem] = p
    return files


def _read_folder(folder: Path, tasks, lengths) -> list[Record]:
    if _task_files(folder):  # FOLDER/<task>.json: one length, named after the folder
        found = {folder.name: _task_files(folder)}
    else:
        found = {d.name: _task_files(d) for d in sorted(folder.iterdir()) if d.is_dir() and _task_files(d)}
    if not found:
        raise ValueError(
            f"{folder} holds no BABILong files: expected {folder}/<length>/<task>.json, .jsonl or .parquet"
        )
    for length in lengths or ():
        if length not in found:
            raise ValueError(f"{folder} has no length {length!r}; it has {', '.join(sorted(found, key=length_value))}")
    records = []
    for length in sorted(lengths or found, key=length_value):
        files = found[length]
        for task in tasks or sorted(files, key=lambda t: int(t[2:])):
            if task not in files:
                raise ValueError(f"{folder / length} has no file for {task}; it has {', '.join(sorted(files))}")
            records += _read_file(files[task], task, length)
    return records


def _read_single_file(path: Path, tasks, lengths) -> list[Record]:
    if path.stem in TASKS:
        task = path.stem
    elif tasks and len(tasks) == 1:
        task = tasks[0]
    else:
        raise ValueError(f"{path.name} is not named after a task (qa1.jsonl, ...): give exactly one --tasks")
    if tasks and task not in tasks:
        raise ValueError(f"{path} holds {task}, not {', '.join(tasks)}")
    length = path.parent.name if length_value(path.parent.name) != float("inf") else path.stem
    if lengths and length not in lengths:
        raise ValueError(f"{path} holds length {length!r}, not {', '.join(lengths)}")
    return _read_file(path, task, length)


def _read_file(path: Path, task: str, length: str) -> list[Record]:
    if path.suffix == ".parquet":
        try:
            import pandas as pd

            rows = pd.read_parquet(path).to_dict(orient="records")
        except ImportError as e:
            raise ValueError(
                f"reading {path.name} needs pandas and pyarrow: pip install pandas pyarrow ({e})"
            ) from None
    else:
        text = path.read_text()
        if not text.strip():
            raise ValueError(f"{path} is empty")
        try:
            if path.suffix == ".jsonl":
                rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            else:
                rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON{' lines' if path.suffix == '.jsonl' else ''}: {e}") from None
        if isinstance(rows, dict):  # columns: {"input": [...], "question": [...], "target": [...]}
            if not all(isinstance(rows.get(f), list) for f in FIELDS):
                raise ValueError(f"{path}: a JSON object must hold the columns {', '.join(FIELDS)} as lists")
            rows = [dict(zip(FIELDS, values)) for values in zip(*(rows[f] for f in FIELDS))]
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{path} holds no records")
    return [_record(row, task, length, f"{path} record {i}") for i, row in enumerate(rows)]


def _record(row, task: str, length: str, where: str) -> Record:
    if not isinstance(row, dict):
        raise ValueError(f"{where} is not an object with the fields {', '.join(FIELDS)}")
    missing = [f for f in FIELDS if f not in row]
    if missing:
        raise ValueError(f"{where} lacks the field(s) {', '.join(missing)} (has {', '.join(map(str, row))})")
    return Record(str(row["input"]), str(row["question"]), str(row["target"]), task=task, length=length)


def _read_hub(name: str, tasks, lengths) -> list[Record]:
    if not lengths:
        raise ValueError(f"hf:{name}: give the lengths to read (its configs, e.g. --lengths 0k 1k 4k)")
    try:
        import datasets
    except ImportError:
        raise ValueError("reading hf:<name> needs the datasets package: pip install datasets") from None
    records = []
    for length in sorted(lengths, key=length_value):
        for task in tasks or GENERATED_TASKS:
            try:
                ds = datasets.load_dataset(name, length, split=task)
            except Exception as e:  # offline, unknown name or config: the library raises many kinds
                raise ValueError(
                    f"could not load hf:{name} ({length}, {task}): {str(e).splitlines()[0] if str(e) else e!r}. "
                    "Nothing can be downloaded without a network: save the set on a machine that has one "
                    f"(datasets.load_dataset(name, length, split=task).to_json('FOLDER/{length}/{task}.jsonl')) "
                    "and pass --data FOLDER"
                ) from None
            records += [_record(row, task, length, f"hf:{name} {length}/{task} record {i}") for i, row in enumerate(ds)]
    return records


# ---------------------------------------------------------------------------------------------
# the generator: bAbI stories by simulating a small world


@dataclass
class Story:
    facts: list[str]
    question: str
    target: str


class _World:
    """Where each person and object is, who holds what, and each object's trail of places."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.facts: list[str] = []
        self.place: dict[str, str] = {}  # person -> place (once known)
        self.holder: dict[str, str] = {}  # object -> person holding it
        self.at: dict[str, str] = {}  # object -> place (once known)
        self.trail: dict[str, list[str]] = {}  # object -> its places, consecutive repeats merged
        self.picked: set[str] = set()  # objects picked up at least once

    def _put(self, obj: str, place: str):
        self.at[obj] = place
        trail = self.trail.setdefault(obj, [])
        if not trail or trail[-1] != place:
            trail.append(place)

    def move(self, person: str):
        place = self.rng.choice([p for p in PLACES if p != self.place.get(person)])
        self.place[person] = place
        for obj, who in self.holder.items():
            if who == person:
                self._put(obj, place)
        self.facts.append(f"{person} {self.rng.choice(MOVES)} the {place}.")

    def gettable(self) -> list[tuple[str, str]]:
        """(person, object) pairs where the person's place is known and the object is free there (or unseen)."""
        return [
            (p, o)
            for p in NAMES
            if p in self.place
            for o in OBJECTS
            if o not in self.holder and self.at.get(o, self.place[p]) == self.place[p]
        ]

    def get(self, person: str, obj: str):
        self.holder[obj] = person
        self.picked.add(obj)
        self._put(obj, self.place[person])
        self.facts.append(f"{person} {self.rng.choice(GETS)} the {obj} there.")

    def drop(self, obj: str):
        person = self.holder.pop(obj)
        self.facts.append(f"{person} {self.rng.choice(DROPS)} the {obj} there.")

    def step(self, weights: tuple[float, float, float]):
        """One random action: move, get or drop (weights), falling back to a move when impossible."""
        kind = self.rng.choices(("move", "get", "drop"), weights=weights)[0]
        if kind == "get" and self.gettable():
            self.get(*self.rng.choice(self.gettable()))
        elif kind == "drop" and self.holder:
            self.drop(self.rng.choice(sorted(self.holder)))
        else:
            self.move(self.rng.choice(NAMES))


def make_story(task: str, rng: random.Random, facts: tuple[int, int] | None = None) -> Story:
    """A bAbI story of `task` (qa1, qa2 or qa3) whose answer follows from its facts."""
    if task not in GENERATED_TASKS:
        check_task(task)
        raise ValueError(f"the generator makes {', '.join(GENERATED_TASKS)}, not {task}: read {task} with --data")
    lo, hi = facts or FACTS[task]
    n = rng.randint(lo, hi)
    for _ in range(1000):  # redraw until the story can ask its question (few tries are needed)
        world = _World(rng)
        if task == "qa1":  # single supporting fact: where a person moved last
            for _ in range(n):
                world.move(rng.choice(NAMES))
            person = rng.choice(sorted(world.place))
            return Story(world.facts, f"Where is {person}?", world.place[person])
        weights = (0.5, 0.3, 0.2) if task == "qa2" else (0.5, 0.35, 0.15)
        for _ in range(n):
            world.step(weights)
        if task == "qa2":  # two supporting facts: an object picked up, where it is now
            candidates = sorted(o for o in world.picked if o in world.at)
            if candidates:
                obj = rng.choice(candidates)
                return Story(world.facts, f"Where is the {obj}?", world.at[obj])
        else:  # qa3, three supporting facts: an object's place before a place it was in once
            options = [
                (obj, j)
                for obj, trail in sorted(world.trail.items())
                for j in range(1, len(trail))
                if trail.count(trail[j]) == 1
            ]
            if options:
                obj, j = rng.choice(options)
                trail = world.trail[obj]
                return Story(world.facts, f"Where was the {obj} before the {trail[j]}?", trail[j - 1])
        n = min(n + 1, hi + 20)  # too few facts to ask: a little longer
    raise RuntimeError(f"could not draw a {task} story")  # not reached: a story needs a handful of facts


def instance_seed(seed: int, task: str, length: int, i: int) -> int:
    """A seed of its own for instance i of every (task, length) cell: fresh stories and background per cell."""
    return random.Random(f"babilong-{seed}-{task}-{length}-{i}").getrandbits(32)


def _background(haystack, rng: random.Random):
    """Background sentences, endlessly, from a random sentence of a text (or the filler's first)."""
    if isinstance(haystack, RepeatedFiller):
        sentences, i = [s for s in SENTENCE_END.split(haystack.text.strip()) if s], 0
    elif isinstance(haystack, TextHaystack):
        sentences = haystack.sentences
        i = rng.randrange(len(sentences))
    else:
        raise ValueError(f"background text must be a filler or a text haystack, got {type(haystack).__name__}")
    while True:
        yield sentences[i]
        i = (i + 1) % len(sentences)


def hide_facts(facts: list[str], tokenizer: Tokenizer, length: int, rng: random.Random, haystack=None) -> str:
    """The facts, in order, between background sentences that run on while the text fits in `length` tokens.

    As BABILong: background sentences are taken one after the other until the next would pass the
    budget; each fact goes at a random gap between them (several may share one), order kept."""
    haystack = get_haystack(haystack) if haystack is None or isinstance(haystack, str) else haystack
    cost: dict[str, int] = {}

    def tokens(sentence: str) -> int:  # a piece's tokens with the space that joins it to the text before
        if sentence not in cost:
            cost[sentence] = len(tokenizer.encode(" " + sentence))
        return cost[sentence]

    budget = length - sum(tokens(f) for f in facts)
    background = []
    if budget > 0:
        for sentence in _background(haystack, rng):
            if tokens(sentence) > budget:
                break
            background.append(sentence)
            budget -= tokens(sentence)
    gaps = sorted(rng.choices(range(len(background) + 1), k=len(facts)))
    pieces, f = [], 0
    for g in range(len(background) + 1):
        while f < len(facts) and gaps[f] == g:
            pieces.append(facts[f])
            f += 1
        if g < len(background):
            pieces.append(background[g])
    return " ".join(pieces)


def generate(
    task: str, tokenizer: Tokenizer, length: int, seed: int, haystack=None, facts: tuple[int, int] | None = None
) -> Record:
    """One instance: a story of `task` hidden in `length` tokens of background (see the module doc)."""
    rng = random.Random(seed)
    story = make_story(task, rng, facts)
    text = hide_facts(story.facts, tokenizer, length, rng, haystack)
    return Record(text, story.question, story.target, task, length_label(length), story.facts, seed)


def generate_cell(
    task: str, tokenizer: Tokenizer, length: int, samples: int, *, seed: int = 0, haystack=None
) -> list[Record]:
    """`samples` fresh instances of one (task, length) cell, each from `instance_seed`."""
    return [generate(task, tokenizer, length, instance_seed(seed, task, length, i), haystack) for i in range(samples)]
