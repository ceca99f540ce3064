"""Does the text encoder itself relate the held-out words to the trained ones? Measured on the encoder alone.

A model that reads a frozen text encoder can follow a word no training caption uses ("scarlet", "westward") only as
far as the encoder puts that word near the trained words of the same meaning ("red", "crimson"; "left",
"leftward"). This asks the encoder directly, with no diffusion model in the loop:

  for each held-out colour word (data/captions.py HELDOUT_WORDS) and each sentence template, embed the sentence
  with that word and the same sentence with every training synonym of every colour; the word is read as the colour
  whose synonym's sentence lies nearest (cosine). The same for direction words. Chance is 1 / 8.

Two readings of each sentence:
  sentence  masked mean of the last-layer token states (what the U-Net's pooled prompt path reads);
  word      the mean of the word's own token states in that sentence (what a cross-attention query can find).

A word the encoder misreads here is one a model trained on this world's captions has no reason to follow: the
held-out accuracy of such words measures the encoder, not the video model (docs/evaluation.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stillmotion.data.captions import COLOUR_WORDS, DIRECTION_WORDS, HELDOUT_WORDS

TEMPLATES = {  # {w}: the word asked about; the other attribute is fixed
    "colour": ["a {w} circle moving left", "the {w} square slides upward", "a small {w} ring"],
    "direction": ["a red circle moving {w}", "the blue square slides {w}", "a green triangle heading {w}"],
}
VOCABULARY = {"colour": (COLOUR_WORDS, HELDOUT_WORDS["colour"]),
              "direction": (DIRECTION_WORDS, HELDOUT_WORDS["direction"])}


def _readings(encoder, template: str, words: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) sentence readings and (N, D) word readings of the template filled with each word, unit length."""
    sentences = [template.format(w=w) for w in words]
    emb, mask = encoder.encode_all(sentences)  # (N, L, D), (N, L)
    m = mask.float().unsqueeze(-1)
    sentence = (emb * m).sum(1) / m.sum(1).clamp(min=1)  # (N, D)
    slot = template.index("{w}")  # the word's first character, in every sentence
    word = torch.stack([e[encoder.word_positions(s, w, slot)].mean(0)
                        for e, s, w in zip(emb, sentences, words)])  # (N, D)
    return F.normalize(sentence, dim=-1), F.normalize(word, dim=-1)


def encoder_vocabulary(encoder, vocabulary: dict | None = None, templates: dict | None = None) -> dict:
    """For each attribute (colour, direction): the fraction of (held-out word, template) pairs that the encoder
    places nearest a training synonym of the right value, by both readings, and each word's nearest value.

    Args:
        encoder: a models.text.TextEncoder (loaded on first use).
        vocabulary: attribute -> (trained {value: words}, held-out {value: words}); default: the shapes world's
            colour and direction words (VOCABULARY).
        templates: attribute -> sentences with a "{w}" slot; default: TEMPLATES.
    """
    vocabulary, templates = vocabulary or VOCABULARY, templates or TEMPLATES
    out = {}
    for what, (trained, heldout) in vocabulary.items():
        values = list(trained)
        per_word = {w: {"true": v, "nearest_sentence": [], "nearest_word": []}
                    for v, words in heldout.items() for w in words}
        hits = {"sentence": [], "word": []}
        train_pairs = [(v, w) for v in values for w in trained[v]]
        owner = torch.tensor([values.index(v) for v, _ in train_pairs])  # (T,) each synonym's value
        held = list(per_word)
        for template in templates[what]:
            sent_t, word_t = _readings(encoder, template, [w for _, w in train_pairs])
            sent_h, word_h = _readings(encoder, template, held)
            for name, h, t in (("sentence", sent_h, sent_t), ("word", word_h, word_t)):
                sim = h @ t.T  # (H, T)
                best = torch.full((len(held), len(values)), -2.0).scatter_reduce(
                    1, owner.expand(len(held), -1), sim, reduce="amax")  # (H, V) nearest synonym per value
                for w, i in zip(held, best.argmax(1).tolist()):
                    per_word[w][f"nearest_{name}"].append(values[i])
                    hits[name].append(values[i] == per_word[w]["true"])
        out[what] = {"sentence_accuracy": sum(hits["sentence"]) / len(hits["sentence"]),
                     "word_accuracy": sum(hits["word"]) / len(hits["word"]),
                     "chance": 1 / len(values), "templates": templates[what], "words": per_word}
    return {"metric": "held-out words read by the text encoder alone (nearest training synonym, cosine)",
            "encoder": encoder.name, **out}


def vocabulary_lines(report: dict) -> list[str]:
    """Markdown lines for a summary."""
    lines = []
    for what in [k for k in report if isinstance(report[k], dict)]:
        r = report[what]
        usual = {w: max(d["nearest_sentence"], key=d["nearest_sentence"].count)  # ties: the first template's
                 for w, d in r["words"].items()}
        wrong = [f"{w} -> {usual[w]}" for w, d in sorted(r["words"].items()) if usual[w] != d["true"]]
        lines.append(f"- {what}: the text encoder places {r['sentence_accuracy']:.2f} of the held-out {what} words "
                     f"(by sentence; {r['word_accuracy']:.2f} by the word's own tokens) nearest a training synonym "
                     f"of the right {what} (chance {r['chance']:.2f})" + (f"; misread: {', '.join(wrong)}" if wrong
                                                                          else ""))
    return lines
