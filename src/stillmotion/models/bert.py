"""A BERT encoder in plain PyTorch, for loading MiniLM-style text encoders without importing transformers.

Why: the prompt encoder (models/text.py) is a frozen BERT (MiniLM-L6: 6 layers, width 384, 12 heads). Through
transformers its first use cost ~3 s on 2 CPU cores, nearly all of it importing transformers' modelling code,
against ~0.1 s to read the weights; that was most of what `stillmotion generate` took for one clip. This file
computes the same last-layer token states (tests/test_text.py compares both on the shipped encoder) with the
`tokenizers` library reading the folder's tokenizer.json, and loads the folder's model.safetensors directly.

    encoder = BertEncoder.from_folder(path)   # a Hugging Face BERT folder: config.json, tokenizer.json, weights
    hidden, mask = encoder(["a red circle moving left"], max_length=32)   # (B, L, D), (B, L) bool

Only plain BERTs qualify (`supports`): absolute positions, GELU, post-LayerNorm; others are left to transformers.
The parameter names are the Hugging Face ones, so the state dict loads as it is.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def supports(config: dict) -> bool:
    """Whether a Hugging Face config.json describes an encoder this module computes exactly."""
    return (config.get("model_type") == "bert" and config.get("hidden_act") == "gelu"
            and config.get("position_embedding_type", "absolute") == "absolute")


class Layer(nn.Module):
    """One post-LN transformer layer, named as in Hugging Face's BertLayer."""

    def __init__(self, dim: int, heads: int, hidden: int, eps: float):
        super().__init__()
        self.heads = heads
        self.attention = nn.Module()
        self.attention.self = nn.Module()
        self.attention.self.query, self.attention.self.key, self.attention.self.value = (
            nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim))
        self.attention.output = nn.Module()
        self.attention.output.dense, self.attention.output.LayerNorm = nn.Linear(dim, dim), nn.LayerNorm(dim, eps)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(dim, hidden)
        self.output = nn.Module()
        self.output.dense, self.output.LayerNorm = nn.Linear(hidden, dim), nn.LayerNorm(dim, eps)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        """x: (B, L, D); bias: (B, 1, 1, L) additive attention mask (0 or -inf-like at padding)."""
        b, n, d = x.shape
        a = self.attention.self

        def split(t: Tensor) -> Tensor:
            return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)  # (B, heads, L, D / heads)
        att = F.scaled_dot_product_attention(split(a.query(x)), split(a.key(x)), split(a.value(x)), attn_mask=bias)
        att = att.transpose(1, 2).reshape(b, n, d)  # (B, L, D)
        x = self.attention.output.LayerNorm(x + self.attention.output.dense(att))
        return self.output.LayerNorm(x + self.output.dense(F.gelu(self.intermediate.dense(x))))


class BertEncoder(nn.Module):
    """BERT's embeddings and layers (no pooler); `forward` tokenizes and returns last-layer token states."""

    def __init__(self, config: dict, tokenizer):
        super().__init__()
        dim, eps = config["hidden_size"], config.get("layer_norm_eps", 1e-12)
        self.config, self.tokenizer = config, tokenizer
        self.embeddings = nn.Module()
        self.embeddings.word_embeddings = nn.Embedding(config["vocab_size"], dim)
        self.embeddings.position_embeddings = nn.Embedding(config["max_position_embeddings"], dim)
        self.embeddings.token_type_embeddings = nn.Embedding(config.get("type_vocab_size", 2), dim)
        self.embeddings.LayerNorm = nn.LayerNorm(dim, eps)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(Layer(dim, config["num_attention_heads"], config["intermediate_size"], eps)
                                           for _ in range(config["num_hidden_layers"]))

    @classmethod
    def from_folder(cls, path: str | Path) -> BertEncoder:
        """Load config.json, tokenizer.json and model.safetensors from a Hugging Face BERT folder."""
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        path = Path(path)
        config = json.loads((path / "config.json").read_text())
        if not supports(config):
            raise ValueError(f"BertEncoder: {path} is not a plain BERT (model_type {config.get('model_type')}, "
                             f"hidden_act {config.get('hidden_act')}); load it with transformers")
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        # built on the CPU (on the meta device, torch imports its reference ops: 1.5 s) and its random init thrown
        # away: under fork_rng, so that loading the encoder leaves the caller's seeded random stream as it was
        with torch.random.fork_rng(devices=[]):
            model = cls(config, tokenizer)
        state = {k.removeprefix("bert."): v for k, v in load_file(str(path / "model.safetensors")).items()
                 if not k.removeprefix("bert.").startswith("pooler.") and not k.endswith("position_ids")}
        model.load_state_dict(state, strict=True, assign=True)
        return model.float().eval().requires_grad_(False)  # float32 whatever the file holds, as transformers

    def tokenize(self, prompts: list[str], max_length: int) -> tuple[Tensor, Tensor, list[list[tuple[int, int]]]]:
        """Token ids (B, L) and mask (B, L) bool, padded to the longest prompt after truncation to max_length
        tokens ([CLS] and [SEP] included), and each prompt's (start, end) character offsets per token."""
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        encodings = self.tokenizer.encode_batch(prompts)
        length = max(len(e.ids) for e in encodings)
        ids = torch.zeros(len(prompts), length, dtype=torch.long)
        for i, e in enumerate(encodings):
            ids[i, :len(e.ids)] = torch.tensor(e.ids)
        mask = torch.arange(length)[None] < torch.tensor([len(e.ids) for e in encodings])[:, None]
        return ids, mask, [list(e.offsets) for e in encodings]

    def forward(self, prompts: list[str], max_length: int = 32) -> tuple[Tensor, Tensor]:
        """(B, L, D) float32 last hidden states of the prompts and the (B, L) bool mask of real tokens."""
        ids, mask, _ = self.tokenize(prompts, max_length)
        device = self.embeddings.word_embeddings.weight.device
        ids, mask = ids.to(device), mask.to(device)
        e = self.embeddings
        positions = torch.arange(ids.shape[1], device=device)
        x = e.LayerNorm(e.word_embeddings(ids) + e.position_embeddings(positions)[None]
                        + e.token_type_embeddings(torch.zeros_like(ids)))  # (B, L, D)
        bias = torch.zeros(mask.shape, dtype=x.dtype, device=device).masked_fill(~mask, -math.inf)  # (B, L)
        bias = bias.clamp(min=torch.finfo(x.dtype).min)[:, None, None, :]  # (B, 1, 1, L)
        for layer in self.encoder.layer:
            x = layer(x, bias)
        return x, mask
