#!/usr/bin/env python3
"""Generate the fixtures of the AttentionModelsTests: a tiny random BERT as a sentence-transformers
folder with its outputs, the real all-MiniLM-L6-v2 tokenizer's ids over a varied corpus, and the
real model's embeddings of a dozen sentences.

Run by hand (never by CI), from the repository root, in the virtual environment of
`make bench-minilm` (`~/.cache/swift-attention-venv`: torch, transformers, sentence-transformers,
tokenizers, safetensors, numpy) after `make model-minilm`:

    ~/.cache/swift-attention-venv/bin/python Tests/AttentionModelsTests/Fixtures/generate_bert_fixtures.py

Writes into this folder:
  tiny-bert/              a 2-layer BERT (hidden 32, 4 heads, 64-token vocabulary of letters and a
                          few words), randomly initialised with a fixed seed, saved by
                          sentence-transformers (mean pooling, Normalize, max_seq_length 24)
  tiny_bert_outputs.json  its token ids (from the tokenizers library), last hidden states
                          (transformers' BertModel) and embeddings (SentenceTransformer.encode),
                          and pooled vectors for every pooling mode (sentence-transformers' Pooling)
  minilm-tokenizer/       the real model's vocab.txt, tokenizer_config.json and tokenizer.json
                          with its (duplicate) vocabulary removed
  minilm_tokenizer_ids.json  ids of the corpus below, untruncated and truncated to 256
  minilm_embeddings.json  the real model's embeddings of twelve sentences (SentenceTransformer.encode)

`--sweep FILE` also writes the tokenizers library's ids of "a" + c + "b" for every code point c
(1.1 M lines, not committed); `BERT_TOKENIZER_SWEEP=FILE swift test --filter sweep` compares.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
MINILM = REPO / "models" / "all-MiniLM-L6-v2"

TINY_VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + list("abcdefghijklmnopqrstuvwxyz")
    + list(".,!?'-")
    + ["the", "cat", "dog", "sat", "on", "mat", "is", "and", "ran"]
    + ["##s", "##ing", "##ed", "##e", "##a", "##o", "##t", "##n", "##r", "##i", "##d", "##y"]
    + ["东", "京", "é"]
)

TINY_SENTENCES = [
    "The cat sat on the mat.",
    "A dog ran!",
    "dogs and cats",
    "Sitting, running, jumped?",
    "东京 is a city",
    "Café",
    "",
    "the the the the the the the the the the the the the the the the the the the the the the the the",
    "x",
    "Mat's end-of-line",
]

CORPUS = [
    "",
    " ",
    "Hello, world!",
    "HELLO World hello WORLD",
    "Crème brûlée, naïve café, façade, jalapeño, Ångström, Øresund, Straße",
    "İstanbul ıi İİ ǅungla ß ẞ ﬁnance ﬀ",
    "东京是日本的首都。北京欢迎你！漢字かなカナ한국어",
    "Emoji 😀🎉👍🏽 👨‍👩‍👧 ❤️ 🇫🇷 🥲🫠",
    "Москва — столица России. Ёжик в тумане.",
    "مرحبا بالعالم، كيف حالك؟",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "zero\u200bwidth\u200cjoiner\u200dx\ufeffbom",
    "control\x00chars\x01\x07\x1b[0m\x7f\x85end",
    "tab\tnew\nline\r\nvertical\x0bform\x0cfeed",
    "\u00a0non-breaking\u2003em\u3000ideographic\u2028line\u2029para",
    "Ｆｕｌｌｗｉｄｔｈ　ＡＢＣ１２３！？",
    "punctuation!!!???...,,,;;;:::---___***&&&%%%$$$###@@@",
    "«quotes» „German“ ‘single’ “double” 「括弧」 (paren) [bracket] {brace} <angle>",
    "math: 2+2=4, x^2 <= y, a|b, ~tilde, `back`, 3×4÷2 ≠ ±1 ∑∫√∞",
    "currency: $5, €10, £3, ¥100, ₹50, ₿1",
    "numbers 3.14159 1,000,000 1e-9 0x1F 007",
    "email@example.com https://example.org/path?q=1&r=2#frag",
    "don't won't y'all rock'n'roll",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "a" * 99,
    "b" * 100,
    "c" * 101,
    "x" + "é" * 120,
    "combining: e\u0301 a\u0308 o\u0302 n\u0303 i\u0307",
    "precomposed vs decomposed: é e\u0301",
    "Greek: Ωμέγα ΣΊΣΥΦΟΣ άλφα",
    "special tokens: [CLS] [SEP] [MASK] [PAD] [UNK] [cls] [ SEP ]",
    "a[SEP]b[CLS]c",
    "private\ue000use\U000f0000",
    "replacement\ufffdchar",
    "surrogate-free astral: 𝒜𝓁𝓅𝒽𝒶 𝟙𝟚𝟛 𠀀𠀁 𪜀",
    "unassigned \u0378 \U000e0001tag",
    "ﬃ ﬄ ſt Ⅻ ① ²³ ½",
    "Ｈｅｌｌｏ　Ｗｏｒｌｄ",
    "The quick brown fox jumps over the lazy dog. " * 40,
    " leading and trailing spaces   ",
    "multiple     internal\t\t\tspaces",
    "mixedCASE camelCase snake_case kebab-case SCREAMING_CASE",
    "#hashtag @mention $TICKER",
    "Ünïcödé ÀÉÎÕÜ àéîõü",
    "Tiếng Việt có dấu",
    "Ελληνικά και Русский и 中文 and English",
]


def seeded_texts(count: int, seed: int) -> list[str]:
    """Random strings mixing scripts, marks, punctuation, controls and spaces."""
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "éèêëàâäôöûüçñÉÈÀÇÑßøåæœ",
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГД",
        "的一是不了人我在有他这为之大来以个中上们",
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¡¿«»—–…·",
        "\u0300\u0301\u0302\u0308\u0327\u200b\u200d\u00ad\ufeff",
        "😀🎉👍🏽❤️🇫🇷",
        "   \t\n\u3000\u00a0",
        "\x00\x01\x1f\x7f\ufffd",
    ]
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        length = rng.randint(1, 60)
        texts.append("".join(rng.choice(rng.choice(pools)) for _ in range(length)))
    return texts


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, ensure_ascii=True, separators=(",", ":")) + "\n")
    print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size // 1024} KB)")


def floats(tensor) -> list[float]:
    return [float(x) for x in np.asarray(tensor, dtype=np.float32).reshape(-1)]


def versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in
            ["torch", "transformers", "sentence-transformers", "tokenizers", "safetensors"]}


def tiny_bert() -> None:
    from sentence_transformers import SentenceTransformer, models
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = HERE / "tiny-bert"
    if folder.exists():
        shutil.rmtree(folder)
    build = HERE / ".tiny-bert-build"
    if build.exists():
        shutil.rmtree(build)
    build.mkdir()
    # Built with the tokenizers library itself, as BERT's tokenizer.json describes it.
    backend = Tokenizer(WordPiece({token: i for i, token in enumerate(TINY_VOCAB)}, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tokenizer = BertTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]",
        mask_token="[MASK]", do_lower_case=True)
    torch.manual_seed(11)
    config = BertConfig(
        vocab_size=len(TINY_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=40, type_vocab_size=2, layer_norm_eps=1e-12,
        hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertModel(config, add_pooling_layer=False).eval()
    with torch.no_grad():  # LayerNorms away from the identity, so loading them is tested
        for name, parameter in model.named_parameters():
            if "LayerNorm" in name:
                parameter.add_(0.2 * torch.randn_like(parameter))
    model.save_pretrained(build, safe_serialization=True)
    tokenizer.save_pretrained(build)

    transformer = models.Transformer(str(build), max_seq_length=24)
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean")
    st = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")
    st.save(str(folder))
    shutil.rmtree(build)
    for extra in ["README.md", "config_sentence_transformers.json", "special_tokens_map.json"]:
        (folder / extra).unlink(missing_ok=True)

    st = SentenceTransformer(str(folder), device="cpu")
    hf_model = BertModel.from_pretrained(folder).eval()
    hf_tokenizer = BertTokenizerFast.from_pretrained(folder)
    ids = [hf_tokenizer(s, truncation=True, max_length=24)["input_ids"] for s in TINY_SENTENCES]
    with torch.no_grad():
        hidden = [hf_model(torch.tensor([seq])).last_hidden_state[0] for seq in ids]
    embeddings = st.encode(TINY_SENTENCES, batch_size=4, convert_to_numpy=True)
    pooled = {}
    for mode in ["cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"]:
        module = models.Pooling(32, pooling_mode=mode)
        rows = []
        for h in hidden:
            features = {"token_embeddings": h[None], "attention_mask": torch.ones(1, h.shape[0])}
            rows.append(floats(module(features)["sentence_embedding"][0]))
        pooled[mode] = rows
    write_json(HERE / "tiny_bert_outputs.json", {
        "versions": versions(),
        "sentences": TINY_SENTENCES,
        "ids": ids,
        "hidden": [floats(h) for h in hidden],
        "embeddings": [floats(e) for e in embeddings],
        "pooled": pooled,
    })


def minilm_tokenizer() -> None:
    from tokenizers import Tokenizer

    folder = HERE / "minilm-tokenizer"
    folder.mkdir(exist_ok=True)
    shutil.copy(MINILM / "vocab.txt", folder / "vocab.txt")
    shutil.copy(MINILM / "tokenizer_config.json", folder / "tokenizer_config.json")
    spec = json.loads((MINILM / "tokenizer.json").read_text())
    spec["model"]["vocab"] = {}  # vocab.txt holds the same ids
    (folder / "tokenizer.json").write_text(json.dumps(spec, indent=1, ensure_ascii=False) + "\n")

    tokenizer = Tokenizer.from_file(str(MINILM / "tokenizer.json"))
    tokenizer.no_padding()
    texts = CORPUS + seeded_texts(150, seed=2026)
    tokenizer.no_truncation()
    full = [tokenizer.encode(t).ids for t in texts]
    tokenizer.enable_truncation(max_length=256)
    truncated = [tokenizer.encode(t).ids for t in texts]
    write_json(HERE / "minilm_tokenizer_ids.json", {
        "versions": versions(), "texts": texts, "ids": full, "ids_max_length_256": truncated,
    })


MINILM_SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "Das ist ein Satz auf Deutsch, mit Umlauten: Übermäßig schön!",
    "东京是日本的首都。",
    "The quick brown fox jumps over the lazy dog. " * 30,
]


def minilm_embeddings() -> None:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(MINILM), device="cpu")
    embeddings = st.encode(MINILM_SENTENCES, batch_size=32, convert_to_numpy=True)
    ids = st.tokenize(MINILM_SENTENCES)["input_ids"]
    mask = st.tokenize(MINILM_SENTENCES)["attention_mask"]
    write_json(HERE / "minilm_embeddings.json", {
        "versions": versions(),
        "sentences": MINILM_SENTENCES,
        "ids": [[int(i) for i, m in zip(row, mrow) if m] for row, mrow in zip(ids.tolist(), mask.tolist())],
        "embeddings": [floats(e) for e in embeddings],
    })


def sweep(path: Path) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(MINILM / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    with open(path, "w") as out:
        for start in range(0, len(points), 20000):
            chunk = points[start:start + 20000]
            encodings = tokenizer.encode_batch(["a" + chr(c) + "b" for c in chunk], add_special_tokens=False)
            for c, encoding in zip(chunk, encodings):
                out.write("%x %s\n" % (c, ",".join(map(str, encoding.ids))))
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, help="also write the every-code-point ids to this file")
    args = parser.parse_args()
    if not (MINILM / "model.safetensors").exists():
        raise SystemExit(f"{MINILM} is missing: run `make model-minilm` first")
    torch.set_num_threads(1)
    tiny_bert()
    minilm_tokenizer()
    minilm_embeddings()
    if args.sweep:
        sweep(args.sweep)


if __name__ == "__main__":
    main()
