"""Captions for the synthetic worlds: many wordings of one exact set of labels, in two disjoint splits.

A caption is built in three layers, each drawn at random from `rng`:
  1. a noun phrase per object       "a red circle", "the crimson disc", "a handwritten seven";
  2. a motion phrase per object     "moving left", "slides slowly leftward", "leftward drift of {obj}";
  3. a sentence frame               "a clip of {c}", "in this video, {c}", ... joined over 1-2 objects.

Two splits:
  "train"    the frames in TRAIN_FRAMES and the training synonyms;
  "heldout"  frames of other sentence shapes (questions, imperatives, passive voice, "there is ...",
             "watch as ...") that the train split never produces, and a few extra synonyms (HELDOUT_WORDS)
             mixed with the training ones. Judge prompt following on held-out wordings.

The labels stay exact; only the words vary. `canonical_caption` gives one fixed wording for evaluation
prompts and `parse_prompt` recovers the attributes from a wording (best effort, for reports).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------------------------- vocabulary
# Canonical attribute name -> training synonyms (the canonical word is always one of them).
COLOUR_WORDS = {
    "red": ["red", "crimson", "cherry-red", "ruby", "bright red"],
    "green": ["green", "grass-green", "leaf-green", "bright green", "jade"],
    "blue": ["blue", "cobalt", "deep blue", "royal blue", "bright blue"],
    "yellow": ["yellow", "golden", "canary yellow", "sunny yellow", "bright yellow"],
    "cyan": ["cyan", "turquoise", "teal", "blue-green", "light cyan"],
    "magenta": ["magenta", "hot pink", "pink", "purple-pink", "bright magenta"],
    "white": ["white", "pale", "ivory", "bright white", "milky"],
    "orange": ["orange", "amber", "tangerine", "pumpkin-orange", "bright orange"],
}
SHAPE_WORDS = {
    "circle": ["circle", "disc", "disk", "ball", "dot", "round blob"],
    "square": ["square", "block", "tile", "square patch", "square tile"],
    "triangle": ["triangle", "triangular shape", "triangular tile", "three-sided shape"],
    "diamond": ["diamond", "rhombus", "lozenge"],
    "ring": ["ring", "hoop", "donut"],
}
SIZE_WORDS = {"small": ["small", "little", "tiny"], "large": ["large", "big"]}
DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# {d}: the numeral, {w}: the word. The determiner is part of the template.
DIGIT_PHRASES = [("a handwritten {w}", "the handwritten {w}"), ("the digit {d}", "the digit {d}"),
                 ("a handwritten digit {d}", "the handwritten digit {d}"),
                 ("the number {d}", "the number {d}"),
                 ("a hand-drawn {d}", "the hand-drawn {d}"), ("a scribbled {w}", "the scribbled {w}"),
                 ("the numeral {d}", "the numeral {d}"), ("a {w}", "the {w}")]

# Directions: (dx, dy) in image coordinates (y points down) and how to say them.
DIRECTIONS = {
    "left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1),
    "up-left": (-1, -1), "up-right": (1, -1), "down-left": (-1, 1), "down-right": (1, 1),
}
DIRECTION_WORDS = {
    "left": ["left", "to the left", "leftward", "leftwards", "towards the left edge", "toward the left side"],
    "right": ["right", "to the right", "rightward", "rightwards", "towards the right edge",
              "toward the right side"],
    "up": ["up", "upward", "upwards", "towards the top", "toward the top edge"],
    "down": ["down", "downward", "downwards", "towards the bottom", "toward the bottom edge"],
    "up-left": ["up and to the left", "up and left", "diagonally up-left", "towards the top-left corner",
                "toward the upper left"],
    "up-right": ["up and to the right", "up and right", "diagonally up-right", "towards the top-right corner",
                 "toward the upper right"],
    "down-left": ["down and to the left", "down and left", "diagonally down-left",
                  "towards the bottom-left corner", "toward the lower left"],
    "down-right": ["down and to the right", "down and right", "diagonally down-right",
                   "towards the bottom-right corner", "toward the lower right"],
}
DIRECTION_ADJ = {"left": "leftward", "right": "rightward", "up": "upward", "down": "downward",
                 "up-left": "up-left", "up-right": "up-right", "down-left": "down-left",
                 "down-right": "down-right"}
# Verb triples (participle, third person, base) for travelling in a direction.
TRAVEL_VERBS = [("moving", "moves", "move"), ("sliding", "slides", "slide"), ("drifting", "drifts", "drift"),
                ("travelling", "travels", "travel"), ("gliding", "glides", "glide"),
                ("heading", "heads", "head"),
                ("going", "goes", "go"), ("shifting", "shifts", "shift"), ("floating", "floats", "float"),
                ("making its way", "makes its way", "make its way")]
SPEED_VERBS = {"slow": [("creeping", "creeps", "creep"), ("inching", "inches", "inch")],
               "fast": [("zooming", "zooms", "zoom"), ("racing", "races", "race"),
                        ("darting", "darts", "dart"), ("speeding", "speeds", "speed")]}
TRAVEL_NOUNS = ["drift", "motion", "movement", "slide", "glide"]
# Motions that are not a direction: (participle, third person, base) phrases and noun patterns.
MOTION_PHRASES = {
    "static": [("sitting still", "sits still", "sit still"), ("staying still", "stays still", "stay still"),
               ("not moving", "does not move", "not move"), ("standing still", "stands still", "stand still"),
               ("remaining stationary", "remains stationary", "remain stationary"),
               ("holding still", "holds still", "hold still"), ("staying put", "stays put", "stay put"),
               ("resting in place", "rests in place", "rest in place"),
               ("frozen in place", "stays frozen in place", "stay frozen in place")],
    "bouncing": [("bouncing around", "bounces around", "bounce around"),
                 ("bouncing off the walls", "bounces off the walls", "bounce off the walls"),
                 ("ricocheting around the frame", "ricochets around the frame", "ricochet around the frame"),
                 ("bouncing back and forth", "bounces back and forth", "bounce back and forth"),
                 ("rebounding off the edges", "rebounds off the edges", "rebound off the edges"),
                 ("bouncing", "bounces", "bounce")],
    "growing": [("growing", "grows", "grow"), ("getting bigger", "gets bigger", "get bigger"),
                ("expanding", "expands", "expand"), ("growing larger", "grows larger", "grow larger"),
                ("increasing in size", "increases in size", "increase in size"),
                ("swelling", "swells", "swell"), ("scaling up", "scales up", "scale up")],
    "shrinking": [("shrinking", "shrinks", "shrink"), ("getting smaller", "gets smaller", "get smaller"),
                  ("contracting", "contracts", "contract"), ("shrinking down", "shrinks down", "shrink down"),
                  ("decreasing in size", "decreases in size", "decrease in size"),
                  ("deflating", "deflates", "deflate"), ("scaling down", "scales down", "scale down")],
    "rotating": [("rotating", "rotates", "rotate"), ("spinning", "spins", "spin"),
                 ("turning in place", "turns in place", "turn in place"), ("twirling", "twirls", "twirl"),
                 ("spinning around", "spins around", "spin around"),
                 ("rotating on the spot", "rotates on the spot", "rotate on the spot")],
}
MOTION_NOUNS = {  # {s}: optional speed adjective with a trailing space, {o}: the object
    "static": ["{o} at rest", "{o} in a fixed position", "{o}, perfectly still", "a still {o_bare}"],
    "bouncing": ["{s}bouncing motion of {o}", "{o} on a {s}bouncing path", "{s}ricochets of {o}"],
    "growing": ["{s}expansion of {o}", "{s}growth of {o}", "{o} that keeps getting bigger"],
    "shrinking": ["{s}contraction of {o}", "{s}shrinking of {o}", "{o} that keeps getting smaller"],
    "rotating": ["{s}rotation of {o}", "{s}spin of {o}", "{o} in {s}rotation"],
}
SPEED_ADVERBS = {"slow": ["slowly", "gently", "gradually", "lazily", "at a slow pace"],
                 "fast": ["quickly", "rapidly", "swiftly", "fast", "at high speed"]}
SPEED_ADJ = {"slow": ["slow", "gentle", "lazy", "gradual"], "fast": ["fast", "quick", "rapid", "swift"]}
BACKGROUND_WORDS = {
    "black": ["on a black background", "against a dark backdrop", "in an empty dark frame", "on black"],
    "gray": ["on a gray background", "against a grey backdrop", "on a dull grey field"],
    "gradient": ["over a gradient background", "against a shaded backdrop", "on a graded background"],
    "noise": ["on a noisy background", "over static noise", "against a grainy backdrop"],
}

# Words only the held-out split uses (mixed in with probability P_HELDOUT_WORD per slot).
HELDOUT_WORDS: dict[str, dict[str, list]] = {
    "colour": {"red": ["scarlet"], "green": ["emerald"], "blue": ["sapphire"], "yellow": ["lemon"],
               "cyan": ["aqua"], "magenta": ["fuchsia"], "white": ["snowy"], "orange": ["apricot"]},
    "shape": {"circle": ["orb"], "square": ["box"], "triangle": ["wedge"], "diamond": ["kite"],
              "ring": ["loop"]},
    "direction": {"left": ["westward"], "right": ["eastward"], "up": ["northward"], "down": ["southward"],
                  "up-left": ["northwest"], "up-right": ["northeast"], "down-left": ["southwest"],
                  "down-right": ["southeast"]},
    "travel": {"any": [("cruising", "cruises", "cruise"), ("advancing", "advances", "advance")]},
    "speed": {"slow": ["sluggishly", "unhurriedly"], "fast": ["briskly", "speedily"]},
    "motion": {"static": [("lingering motionless", "lingers motionless", "linger motionless")],
               "bouncing": [("pinging off the sides", "pings off the sides", "ping off the sides")],
               "growing": [("enlarging", "enlarges", "enlarge"), ("ballooning", "balloons", "balloon")],
               "shrinking": [("dwindling", "dwindles", "dwindle")],
               "rotating": [("whirling", "whirls", "whirl"), ("pivoting", "pivots", "pivot")]},
    "digit": {"any": [("the figure {w}", "the figure {w}"), ("a pen-drawn {d}", "the pen-drawn {d}")]},
}
P_HELDOUT_WORD = 0.4

# ---------------------------------------------------------------------------------------------- frames
# (clause form, frame). Clause forms, shown for one object:
#   ing      "a red circle moving left"        verbs    "the red circle moves left"
#   averbs   "a red circle moves left"         nominal  "leftward drift of a red circle"
#   base     "the red circle move left"        passive  "a red circle is shown moving left"
TRAIN_FRAMES = [
    ("ing", "{c}"), ("ing", "a video of {c}"), ("ing", "a clip of {c}"), ("ing", "footage of {c}"),
    ("ing", "an animation of {c}"), ("ing", "a short clip showing {c}"), ("ing", "a scene with {c}"),
    ("ing", "video: {c}"), ("ing", "this video shows {c}"), ("ing", "a simple animation: {c}"),
    ("ing", "a rendering of {c}"), ("ing", "a synthetic clip of {c}"), ("ing", "a few frames of {c}"),
    ("ing", "{c}, captured on video"), ("ing", "a toy video with {c}"), ("ing", "the frame contains {c}"),
    ("verbs", "{c}"), ("verbs", "in this clip, {c}"), ("verbs", "in this video {c}"), ("verbs", "here {c}"),
    ("verbs", "{c} in this animation"), ("verbs", "during the clip, {c}"),
    ("verbs", "over the course of the clip, {c}"), ("verbs", "as the video plays, {c}"),
    ("verbs", "in the frame, {c}"), ("verbs", "{c} from start to finish"),
    ("averbs", "a clip in which {c}"), ("averbs", "a video where {c}"), ("averbs", "an animation where {c}"),
    ("averbs", "a scene in which {c}"), ("averbs", "{c}"),
    ("nominal", "{c}"), ("nominal", "footage: {c}"), ("nominal", "{c} in a tiny video"),
    ("nominal", "a clip showing {c}"), ("nominal", "animation, {c}"),
]
HELDOUT_FRAMES = [
    ("ing", "there is {c}"), ("ing", "there's {c}"), ("ing", "we see {c}"), ("ing", "you can see {c}"),
    ("ing", "is there {c}?"), ("ing", "can you spot {c}?"), ("ing", "show me {c}"), ("ing", "generate {c}"),
    ("ing", "render {c}"), ("ing", "imagine {c}"), ("ing", "i would like to see {c}"),
    ("verbs", "watch as {c}"), ("verbs", "notice how {c}"), ("verbs", "see how {c}"),
    ("verbs", "look closely: {c}"), ("verbs", "what happens? {c}"),
    ("base", "make {c}"), ("base", "let {c}"), ("base", "have {c}"), ("base", "please make {c}"),
    ("passive", "{c}"), ("passive", "on screen, {c}"), ("averbs", "somewhere in the frame {c}"),
]
PASSIVE_VERBS = ["is shown", "can be seen", "is depicted", "appears"]
SPLITS = ("train", "heldout")


def _pick(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))]


def _words(rng, split: str, train: list, heldout: list | None):
    """A training word, or (held-out split only, sometimes) a held-out one."""
    if split == "heldout" and heldout and rng.random() < P_HELDOUT_WORD:
        return _pick(rng, heldout)
    return _pick(rng, train)


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _noun_phrases(obj, rng, split: str) -> tuple[str, str]:
    """(indefinite, definite) noun phrases for one object, e.g. ("a small red disc", "the small red disc")."""
    if obj.shape == "digit":
        indef, definite = _words(rng, split, DIGIT_PHRASES, HELDOUT_WORDS["digit"]["any"])
        d = dict(d=str(obj.digit), w=DIGIT_NAMES[obj.digit])
        indef, definite = indef.format(**d), definite.format(**d)
        if indef.startswith("a "):
            indef = _article(indef[2:])  # "an eight"
        if obj.colour != "white":  # digits are white unless the world colours them; say the colour then
            colour = _words(rng, split, COLOUR_WORDS[obj.colour], HELDOUT_WORDS["colour"][obj.colour])
            indef = _article(f"{colour} {indef.split(' ', 1)[1]}") if indef.startswith("a ") else \
                f"{indef} in {colour}"
            definite = f"the {colour} {definite[4:]}" if definite.startswith("the ") else definite
        return indef, definite
    colour = _words(rng, split, COLOUR_WORDS[obj.colour], HELDOUT_WORDS["colour"][obj.colour])
    shape = _words(rng, split, SHAPE_WORDS[obj.shape], HELDOUT_WORDS["shape"].get(obj.shape))
    size = ""
    if obj.motion not in ("growing", "shrinking") and rng.random() < 0.3:
        if obj.size < 0.24:
            size = _pick(rng, SIZE_WORDS["small"]) + " "
        elif obj.size > 0.3:
            size = _pick(rng, SIZE_WORDS["large"]) + " "
    if rng.random() < 0.1:
        bare = f"{size}{shape} in {colour}"
    else:
        bare = f"{size}{colour} {shape}"
    return _article(bare), "the " + bare


def _motion_phrase(obj, rng, split: str, speed_on: bool) -> tuple[str, str, str]:
    """(participle, third person, base) verb phrases for the object's motion, with its speed or not."""
    motion, speed = obj.motion, obj.speed
    adverb = _words(rng, split, SPEED_ADVERBS[speed], HELDOUT_WORDS["speed"][speed]) if (
        speed_on and speed in SPEED_ADVERBS) else ""
    if motion in DIRECTIONS:
        where = _words(rng, split, DIRECTION_WORDS[motion], HELDOUT_WORDS["direction"][motion])
        if speed_on and speed in SPEED_VERBS and rng.random() < 0.25:
            verbs, adverb = _pick(rng, SPEED_VERBS[speed]), ""  # "creeps", "zooms" carry the speed
        else:
            verbs = _words(rng, split, TRAVEL_VERBS, HELDOUT_WORDS["travel"]["any"])
        phrases = tuple(f"{v} {where}" for v in verbs)
    else:
        phrases = _words(rng, split, MOTION_PHRASES[motion], HELDOUT_WORDS["motion"].get(motion))
        if motion == "static":
            adverb = ""
    if not adverb:
        return phrases
    if adverb.endswith("ly") and rng.random() < 0.4:  # "slowly moving left" as well as "moving left slowly"
        return tuple(f"{adverb} {p}" for p in phrases)
    return tuple(f"{p} {adverb}" for p in phrases)


def _nominal(obj, indef: str, rng, split: str, speed_on: bool) -> str:
    s = (_pick(rng, SPEED_ADJ[obj.speed]) + " ") if speed_on and obj.speed in SPEED_ADJ else ""
    if obj.motion in DIRECTIONS:
        noun = _pick(rng, TRAVEL_NOUNS)
        where = _words(rng, split, DIRECTION_WORDS[obj.motion], HELDOUT_WORDS["direction"][obj.motion])
        pattern = _pick(rng, ["{s}{adj} {n} of {o}", "{s}{n} of {o} {w}", "{s}{n} {w} by {o}"])
        text = pattern.format(s=s, adj=DIRECTION_ADJ[obj.motion], n=noun, o=indef, w=where)
    else:
        pattern = _pick(rng, MOTION_NOUNS[obj.motion])
        text = pattern.format(s=s, o=indef, o_bare=indef.split(" ", 1)[1])
    return text


def _clause(obj, form: str, rng, split: str, p_speed: float) -> str:
    indef, definite = _noun_phrases(obj, rng, split)
    speed_on = obj.motion != "static" and rng.random() < p_speed
    if form == "nominal":
        return _nominal(obj, indef, rng, split, speed_on)
    ing, third, base = _motion_phrase(obj, rng, split, speed_on)
    if form == "ing":
        return f"{indef} {ing}"
    if form == "verbs":
        return f"{definite} {third}"
    if form == "averbs":
        return f"{indef} {third}"
    if form == "base":
        return f"{definite} {base}"
    if form == "passive":
        return f"{indef} {_pick(rng, PASSIVE_VERBS)} {ing}"
    raise ValueError(f"unknown clause form {form!r}")


def make_caption(labels, rng: np.random.Generator, split: str = "train", *, p_speed: float = 0.8,
                 p_background: float = 0.25) -> str:
    """Describe a scene in words drawn at random from `split`.

    Args:
        labels: a `SceneLabels` (objects with colour, shape or digit, motion, speed, size; background).
        rng: numpy Generator; the caption is a deterministic function of its state.
        split: "train" or "heldout" (sentence frames the train split never uses, plus extra synonyms).
        p_speed: probability that a moving object's speed is mentioned.
        p_background: probability that the background is mentioned.

    Returns:
        A lower-case caption, e.g. "a clip of a crimson disc sliding slowly leftward".
    """
    if split not in SPLITS:
        raise ValueError(f"caption split must be one of {SPLITS}; got {split!r}")
    form, frame = _pick(rng, TRAIN_FRAMES if split == "train" else HELDOUT_FRAMES)
    clauses = [_clause(obj, form, rng, split, p_speed) for obj in labels.objects]
    if len(clauses) == 1:
        body = clauses[0]
    else:
        joiner = _pick(rng, [" and ", ", and "] + ([", while "] if form in ("verbs", "averbs") else []))
        body = joiner.join(clauses)
    text = frame.format(c=body)
    background = getattr(labels, "background", "black")
    if background in BACKGROUND_WORDS and rng.random() < p_background:
        where = _pick(rng, BACKGROUND_WORDS[background])
        text = f"{text[:-1]} {where}?" if text.endswith("?") else f"{text} {where}"
    return text


def canonical_caption(labels, *, speed: bool = True) -> str:
    """The one fixed wording of a scene, e.g. "a red circle moving left quickly" (for evaluation prompts)."""
    parts = []
    for obj in labels.objects:
        noun = f"{obj.colour} {obj.shape}" if obj.shape != "digit" else f"digit {obj.digit}"
        if obj.shape == "digit" and obj.colour != "white":
            noun = f"{obj.colour} digit {obj.digit}"
        noun = "the " + noun if obj.shape == "digit" else _article(noun)  # "an orange circle"
        if obj.motion in DIRECTIONS:
            motion = "moving " + DIRECTION_WORDS[obj.motion][0]
        else:
            motion = MOTION_PHRASES[obj.motion][0][0]
        if speed and obj.motion != "static" and obj.speed in SPEED_ADVERBS:
            motion += " " + SPEED_ADVERBS[obj.speed][0]
        parts.append(f"{noun} {motion}")
    return " and ".join(parts)


# ---------------------------------------------------------------------------------------------- parsing

def _lexicon() -> dict[str, list[tuple[str, str]]]:
    """attribute -> [(phrase, canonical value)], longest phrases first."""
    lex: dict[str, list[tuple[str, str]]] = {k: [] for k in ("colour", "shape", "motion", "speed", "digit")}
    for name, words in COLOUR_WORDS.items():
        lex["colour"] += [(w, name) for w in words + HELDOUT_WORDS["colour"][name]]
    for name, words in SHAPE_WORDS.items():
        lex["shape"] += [(w, name) for w in words + HELDOUT_WORDS["shape"].get(name, [])]
    for name, words in DIRECTION_WORDS.items():
        lex["motion"] += [(w, name) for w in words + HELDOUT_WORDS["direction"][name] + [name]]
        lex["motion"] += [(DIRECTION_ADJ[name], name)]
    for name, phrases in MOTION_PHRASES.items():
        for triple in phrases + HELDOUT_WORDS["motion"].get(name, []):
            lex["motion"] += [(p, name) for p in triple]
        lex["motion"] += [(name, name)]
    lex["motion"] += [("still", "static"), ("stationary", "static"), ("motionless", "static"),
                      ("bounce", "bouncing"), ("spin", "rotating"), ("rotation", "rotating"),
                      ("expansion", "growing"), ("growth", "growing"), ("contraction", "shrinking")]
    for speed in ("slow", "fast"):
        words = SPEED_ADVERBS[speed] + SPEED_ADJ[speed] + HELDOUT_WORDS["speed"][speed]
        words += [v for triple in SPEED_VERBS[speed] for v in triple]
        lex["speed"] += [(w, speed) for w in words]
    for d, name in enumerate(DIGIT_NAMES):
        lex["digit"] += [(p, str(d)) for p in (name, f"digit {d}", f"number {d}", f"numeral {d}")]
    lex["digit"] += [(str(d), str(d)) for d in range(10)]
    return {k: sorted(set(v), key=lambda pv: -len(pv[0])) for k, v in lex.items()}


_LEXICON = _lexicon()


def _find(text: str, entries: list[tuple[str, str]]) -> str | None:
    """The canonical value of the earliest phrase in `text` (longest phrase wins at a position)."""
    taken = [False] * len(text)
    hits = []
    for phrase, value in entries:
        for m in re.finditer(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text):
            if not any(taken[m.start():m.end()]):
                taken[m.start():m.end()] = [True] * (m.end() - m.start())
                hits.append((m.start(), value))
    return min(hits)[1] if hits else None


def parse_prompt(text: str) -> dict[str, Any] | None:
    """Recover the attributes of the first-mentioned object from a caption (best effort, for reports).

    Args:
        text: a canonical, training or held-out wording.

    Returns:
        A dict with whichever of "colour", "shape", "motion", "speed", "digit" (int) were recognised,
        or None when none was.
    """
    text = " " + text.lower().strip() + " "
    found: dict[str, Any] = {}
    for key, entries in _LEXICON.items():
        value = _find(text, entries)
        if value is not None:
            found[key] = int(value) if key == "digit" else value
    if "digit" in found:
        found["shape"] = "digit"
    return found or None
