#!/usr/bin/env python3
"""Generate the byte-level BPE fixtures of the AttentionModelsTests: tokenizer.json files trained by
the `tokenizers` library's own BPE trainer on a seeded synthetic corpus, and the ids and decodes
the library gives for a varied set of texts.

Run by hand (never by CI), from the repository root, in the project's virtual environment
(`~/.cache/swift-attention-venv`, with `tokenizers` and `transformers`):

    ~/.cache/swift-attention-venv/bin/python Tests/AttentionModelsTests/Fixtures/generate_bpe_fixtures.py

Writes into this folder (every tokenizer with the 256 bytes as its initial alphabet):
  bpe-256/          0 merges; GPT-2's ByteLevel pre-tokenizer with add_prefix_space
  bpe-1000/         ~1000 tokens; GPT-2's ByteLevel pre-tokenizer; merges in the "a b" string form
  bpe-8000/         ~8000 tokens; Llama 3's Split regex, then ByteLevel without its regex;
                    ignore_merges, as Llama 3's tokenizer.json sets it
  bpe-digits/       ~600 tokens; SmolLM's Digits (individual digits), then ByteLevel with its regex
  bpe-added/        ~1200 tokens; Qwen2's NFC normalizer and Split regex, special and added tokens
                    (lstrip, rstrip, single_word, normalized or not, one already in the vocabulary),
                    Llama 3's post-processor (ByteLevel, then a template putting a BOS token first)
  bpe-ascii/        the 95 bytes of printable ASCII and three merges ("Ġt", "he", "Ġthe"): other
                    bytes are dropped; bpe-unknown/ and bpe-unknown-fused/ make them <unk>, one per
                    byte or one per run (fuse_unk)
  bpe-plain-bytes/  ids 0...255, one per byte, no merges: the file ByteLevelBPETokenizer.plainBytes
                    writes, checked here to load in `tokenizers` and in transformers' AutoTokenizer
                    and to encode every text to its UTF-8 bytes
  bpe_tokenizer_ids.json   the texts; per tokenizer (except plain-bytes, whose ids are the bytes)
                    the ids of each text (of the first 40 for the three printable-ASCII ones),
                    its decode where that differs from the text, the count
                    and checksum of the ids of a long text (the texts joined by newlines, 8 times:
                    about 44 KB), and the decodes of random id lists (with the special tokens
                    too where they differ)

`--check-written DIR` loads instead the files `ByteLevelBPETokenizer.write(to:)` wrote for each
fixture (`BPE_WRITTEN_TOKENIZERS=DIR swift test --filter writesWhatItReads`) and checks their ids.

`--sweep FILE` also writes, for every code point c, how GPT-2's, Llama 3's and Qwen2's patterns and
SmolLM's Digits split a probe string around c (1.1 M lines, not committed);
`BPE_PRE_TOKENIZER_SWEEP=FILE swift test --filter matchesThePreTokenizersOnEveryCodePoint` compares.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import random
import shutil
import tempfile
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# The training text: sentences in many scripts, repeated with seeded variations below.
TRAINING_SENTENCES = [
    "The committee's report wasn't finished, so they'll meet again on Tuesday at 10:30.",
    "We've shipped 1,250 units since March; returns are under 2.5% and falling.",
    "She said, \"I'd rather walk\", and we're still not sure why.",
    "Le comité a publié son rapport : les élèves préfèrent l'été à l'hiver.",
    "Die Straße war naß, aber die Kinder spielten trotzdem draußen im Hof.",
    "El niño comió una manzana y luego salió corriendo al jardín.",
    "Москва — столица России, а Санкт-Петербург — её культурная столица.",
    "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας και μια από τις αρχαιότερες πόλεις.",
    "مرحبا بكم في المكتبة، الكتب الجديدة على الرف الثاني.",
    "הספרייה פתוחה מיום ראשון עד יום חמישי.",
    "भारत की राजधानी नई दिल्ली है और सबसे बड़ा शहर मुंबई है।",
    "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำในประโยค",
    "东京是日本的首都，也是世界上人口最多的城市之一。",
    "今日はとても良い天気ですね。散歩に行きましょう。",
    "서울은 대한민국의 수도이며 가장 큰 도시입니다.",
    "Tiếng Việt dùng chữ Latinh với nhiều dấu thanh điệu.",
    "Emoji travel well 😀🎉 👍🏽 but families 👨‍👩‍👧‍👦 and flags 🇯🇵🇫🇷 take many bytes.",
    "def tokenize(text):\n    return [piece for piece in text.split() if piece]\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += values[i] * 2;\n}\n",
    "SELECT name, count(*) FROM users WHERE age >= 18 GROUP BY name;",
    "https://example.org/search?q=byte+pair&lang=en#results and mail@example.com",
    "Prices: $4.99, €12, £7.50, ¥300, ₹45 — totals 3,141,592.65 or 1e-9.",
    "  Indented lines\n\n\tand tabs\r\nand Windows line ends\r\n",
    "Numbers 0 1 2 3 4 5 6 7 8 9 10 100 1000 10000 123456789 2024-06-01 3.14159",
]

WORDS = {
    "en": "the of and to in is you that it he was for on are as with his they at be this have from or one had by word but not what all were we when your can said there use an each which she do how their if will up other about out many then them these so some her would make like him into time has look two more write go see number no way could people my than first water been call who oil its now find long down day did get come made may part".split(),
    "fr": "le la les des une un est être avoir que pour dans ce il qui ne sur se pas plus pouvoir par je avec tout faire son mettre autre on mais nous comme ou si leur élève été déjà très où".split(),
    "de": "der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch es an werden aus er hat daß sie nach wird bei einer um am sind noch wie über größer Straße".split(),
    "ru": "и в не на я быть он с что а по это она этот к но они мы как из у который то за свой весь год от так о для ты же все тот мочь вы человек такой его сказать только".split(),
    "el": "και το να η της με που ο ένα στο τα είναι για του δεν θα από τον την σε μου".split(),
    "zh": "的 一 是 不 了 人 我 在 有 他 这 为 之 大 来 以 个 中 上 们 到 说 国 和 地 也 子 时 道 出 而 要 于".split(),
    "ja": "の に は を た が で て と し れ さ ある いる も する から な こと として い や".split(),
    "ar": "في من على إلى أن عن مع هذا كان التي الذي ما هو لا".split(),
}


# Syllables of made-up words, so that a large vocabulary finds enough distinct pairs to merge.
SYLLABLES = [
    [c + v for c in "bcdfghjklmnprstvwz" for v in ["a", "e", "i", "o", "u", "ou", "ie", "ä", "é"]],
    [c + v for c in "бвгджзклмнпрстфх" for v in "аеиоуыяю"],
    [c + v for c in "βγδζθκλμνπρστφχ" for v in "αεηιουω"],
    [chr(0x4E00 + 97 * index) for index in range(100)],
]


def pseudo_word(rng: random.Random) -> str:
    """Mostly Latin: a byte-level token of another script takes two to four times the bytes."""
    syllables = SYLLABLES[0] if rng.random() < 0.8 else rng.choice(SYLLABLES[1:])
    return "".join(rng.choice(syllables) for _ in range(rng.randint(1, 4)))


def training_text(seed: int, lines: int) -> list[str]:
    """Seeded lines of words, numbers, contractions, punctuation, code and whitespace."""
    rng = random.Random(seed)
    result = list(TRAINING_SENTENCES) * 3
    languages = sorted(WORDS)
    for _ in range(lines):
        words = WORDS["en" if rng.random() < 0.5 else rng.choice(languages)]
        pieces = []
        for _ in range(rng.randint(3, 18)):
            roll = rng.random()
            if roll < 0.3:
                pieces.append(pseudo_word(rng))
            elif roll < 0.38:
                pieces.append(str(rng.randint(0, 10 ** rng.randint(1, 7))))
            elif roll < 0.42:
                pieces.append(rng.choice(["don't", "it's", "we're", "I've", "you'll", "he'd", "I'm", "THEY'RE"]))
            elif roll < 0.45:
                pieces.append(rng.choice(["(", ")", "...", "--", "\"", ":", ";", "!?", "#", "%"]))
            else:
                word = rng.choice(words)
                pieces.append(word.capitalize() if rng.random() < 0.15 else word)
        separator = rng.choice([" ", " ", " ", "  ", "\t", " \n"])
        result.append(separator.join(pieces) + rng.choice([".", "!", "?", "\n", "", "\r\n"]))
    return result


# The texts whose ids the tests compare.
CORPUS = [
    "",
    " ",
    "  ",
    "a",
    "Hello world",
    " Hello world",
    "   three leading spaces",
    "trailing spaces   ",
    "Hello, world! How's it going? I'm fine; they're here, we've won, you'll see, he'd go, it'd be.",
    "CAPITAL CONTRACTIONS: IT'S, DON'T, WE'RE, I'VE, YOU'LL, I'M, HE'D; mixed: It'S we'Re",
    "contractions without a word: 's 't 're 've 'm 'll 'd and ''s and 'x",
    "long s and friends: it'ſ 'ﬅ 'K 'Ｓ",
    "tab\tseparated\tvalues\t\tdouble",
    "new\nline\n\nparagraph\n\n\nend\n",
    "windows\r\nline\r\nends\r\n\r\n",
    "mixed \t \n \r\n  \t\t\n spaces",
    "   \n   \n",
    "\n",
    "\t",
    "\r\n",
    "control\x00chars\x01\x07\x1b[0m\x7f\x1c\x1d\x1e\x1f end",
    "\x85next line\u2028line sep\u2029para sep",
    "no\u00a0break\u2003em\u3000ideographic\u202fnarrow\u205fmath\u1680ogham",
    "zero\u200bwidth\u200cnon\u200djoiner\u2060word\ufeffbom",
    "numbers 0 7 42 123 1234 12345 123456 1234567 3.14159 1,000,000 1e-9 0x1F 007 -5 +6",
    "digits glued: abc123def 4567xyz 8 9 10",
    "other numerals: ٠١٢٣ ۴۵۶ ०१२ ௧௨ ½ ⅓ Ⅻ ① ²³ 𝟙𝟚",
    "punctuation!!! ??? ... ,,, ;;; ::: --- ___ *** &&& %%% $$$ ### @@@ ~~~ ^^^ ``` ||| \\\\",
    "«quotes» „German“ ‘single’ “double” 「括弧」 (paren) [bracket] {brace} <angle>",
    "math: 2+2=4, x^2 <= y, a|b, ~tilde, 3×4÷2 ≠ ±1 ∑∫√∞",
    "currency: $5, €10, £3, ¥100, ₹50, ₿1",
    "email@example.com https://example.org/path?q=1&r=2#frag",
    "The committee's report wasn't finished, so they'll meet again on Tuesday at 10:30.",
    "Crème brûlée, naïve café, façade, jalapeño, Ångström, Øresund, Straße",
    "decomposed: e\u0301 a\u0308 o\u0302 n\u0303 and precomposed: é ä ô ñ",
    "İstanbul ıi ǅungla ß ẞ ﬁnance ﬀ",
    "Москва — столица России. Ёжик в тумане.",
    "Ελληνικά: Ωμέγα ΣΊΣΥΦΟΣ άλφα",
    "مرحبا بالعالم، كيف حالك؟",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "东京是日本的首都。北京欢迎你！",
    "漢字かなカナ한국어",
    "Tiếng Việt có dấu",
    "Emoji 😀🎉👍🏽 ❤️ 🇫🇷 🥲🫠",
    "ZWJ families 👨‍👩‍👧‍👦 👩🏽‍💻 🏳️‍🌈 🧑‍🤝‍🧑 and keycap 1️⃣",
    "astral: 𝒜𝓁𝓅𝒽𝒶 𠀀𠀁 𪜀 𓀀 and private use \ue000\U000f0000",
    "replacement \ufffd char and noncharacters \ufdd0 \uffff",
    "Ｆｕｌｌｗｉｄｔｈ　ＡＢＣ１２３！？",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "x" * 300,
    "ab" * 100,
    "🎉" * 30,
    "def tokenize(text):\n    return [piece for piece in text.split() if piece]\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += values[i] * 2;\n}\n",
    "special tokens: <|endoftext|> <|im_start|>user\nhi<|im_end|>",
    "glued<|endoftext|>glued and <|endoftext|><|endoftext|> twice",
    "almost special: <|endoftext| <|im_start <|IM_END|>",
    "a <mask> here, a<mask>b there,  <mask>  spaced, and <mask>\tat the end <mask>",
    "hello world, hello  world, Hello world, hello worlds",
    "single words: ſt, ſtop, aſt, ſt!, (ſt)",
    "normalized match: cafe\u0301 café CAFÉ",
    "the added the: the theme other",
    "The quick brown fox jumps over the lazy dog. " * 10,
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit. 1234567890\n" * 5,
]

POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789",
    "éèêëàâäôöûüçñÉÈÀÇÑßøåæœſ",
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГД",
    "的一是不了人我在有他这为之大来以个中上们",
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¡¿«»—–…·",
    "'s 't 're 've 'm 'll 'd 'S 'T 'RE",
    "\u0300\u0301\u0302\u0308\u0327\u200b\u200d\u00ad\ufeff",
    "😀🎉👍🏽❤️🇫🇷👨‍👩‍👧",
    "   \t\n\r\n\u3000\u00a0\u2028\x85",
    "\x00\x01\x1c\x1f\x7f\ufffd",
    "٠١٢٣४५६½Ⅻ①²",
]


def seeded_texts(count: int, seed: int) -> list[str]:
    """Random strings mixing scripts, digits, marks, punctuation, contractions, controls and spaces."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        length = rng.randint(1, 30)
        texts.append("".join(rng.choice(rng.choice(POOLS)) for _ in range(length)))
    return texts


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-to-character table, as the ByteLevel pre-tokenizer maps bytes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {byte: chr(byte) for byte in printable}
    shifted = 0
    for byte in range(256):
        if byte not in table:
            table[byte] = chr(256 + shifted)
            shifted += 1
    return dict(sorted(table.items()))


def versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in ["tokenizers", "transformers"]}


def save(tokenizer: Tokenizer, name: str, edit=None) -> Tokenizer:
    """Writes name/tokenizer.json (compact, as the library serialises it), after `edit` of its JSON."""
    folder = HERE / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    spec = json.loads(tokenizer.to_str())
    if edit:
        edit(spec)
    path = folder / "tokenizer.json"
    path.write_text(json.dumps(spec, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size // 1024} KB)")
    return Tokenizer.from_file(str(path))


def train(vocab_size: int, pre_tokenizer, lines: int, normalizer=None, special_tokens=()) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, show_progress=False, special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(training_text(seed=vocab_size, lines=lines), trainer=trainer)
    return tokenizer


def string_merges(spec) -> None:
    spec["model"]["merges"] = [" ".join(pair) for pair in spec["model"]["merges"]]


def ignore_merges(spec) -> None:
    spec["model"]["ignore_merges"] = True


def tokenizers_to_write() -> dict[str, Tokenizer]:
    result = {}
    result["bpe-256"] = save(train(256, pre_tokenizers.ByteLevel(add_prefix_space=True), lines=200), "bpe-256")

    gpt2 = train(1000, pre_tokenizers.ByteLevel(add_prefix_space=False), lines=4000)
    result["bpe-1000"] = save(gpt2, "bpe-1000", string_merges)
    for text in CORPUS:  # the string form reads as the pair form
        assert result["bpe-1000"].encode(text).ids == gpt2.encode(text).ids

    llama3 = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    result["bpe-8000"] = save(train(8000, llama3, lines=30000), "bpe-8000", ignore_merges)

    smollm = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    result["bpe-digits"] = save(train(600, smollm, lines=2000), "bpe-digits")

    qwen2 = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    added = train(1200, qwen2, lines=6000, normalizer=normalizers.NFC(), special_tokens=["<|endoftext|>"])
    added.add_special_tokens(["<|im_start|>", "<|im_end|>", AddedToken("<|bos|>", special=True)])
    added.add_tokens([
        AddedToken("<mask>", lstrip=True, rstrip=True, normalized=False),
        AddedToken("hello world", normalized=True),
        AddedToken("ſt", single_word=True, normalized=False),
        AddedToken("café", normalized=True),
        AddedToken("the", normalized=False),
    ])
    bos = added.token_to_id("<|bos|>")
    added.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|bos|> $A", pair="<|bos|> $A <|bos|> $B", special_tokens=[("<|bos|>", bos)]),
    ])
    result["bpe-added"] = save(added, "bpe-added")

    for name, unknown, fuse in zip(PRINTABLE_ASCII, [None, "<unk>", "<unk>"], [False, False, True]):
        result[name] = save(printable_ascii(unknown, fuse), name)
    return result


def printable_ascii(unknown: str | None, fuse: bool) -> Tokenizer:
    """The bytes of printable ASCII and three merges: any other byte is dropped, or unknown."""
    table = bytes_to_unicode()
    vocab = {table[byte]: id for id, byte in enumerate(range(32, 127))}
    for token in ["Ġt", "he", "Ġthe"] + ([unknown] if unknown else []):
        vocab[token] = len(vocab)
    tokenizer = Tokenizer(models.BPE(
        vocab=vocab, merges=[("Ġ", "t"), ("h", "e"), ("Ġt", "he")], unk_token=unknown, fuse_unk=fuse))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def plain_bytes() -> None:
    """The file ByteLevelBPETokenizer.plainBytes writes, as the library writes it, checked to load."""
    table = bytes_to_unicode()
    tokenizer = Tokenizer(models.BPE(vocab={table[byte]: byte for byte in range(256)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    loaded = save(tokenizer, "bpe-plain-bytes")

    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(str(HERE / "bpe-plain-bytes"))
    for text in CORPUS + seeded_texts(100, seed=23):
        expected = list(text.encode("utf-8"))
        assert loaded.encode(text).ids == expected, text
        assert auto(text)["input_ids"] == expected, text
        assert loaded.decode(expected) == text


LONG_TEXT_REPEATS = 8
SHORT_CORPUS = 40
PRINTABLE_ASCII = ["bpe-ascii", "bpe-unknown", "bpe-unknown-fused"]


def checksum(ids: list[int]) -> int:
    """A polynomial hash of the ids modulo 2^32, which the Swift test computes the same way."""
    value = 0
    for id in ids:
        value = (value * 1_000_003 + id + 1) % 2 ** 32
    return value


def random_id_lists(rng: random.Random, size: int) -> list[list[int]]:
    """Short random id lists (some past the vocabulary), for decoding."""
    return [[rng.randrange(size + 3) for _ in range(rng.randint(1, 12))] for _ in range(30)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, help="also write the every-code-point pre-token splits to this file")
    parser.add_argument("--check-written", type=Path, metavar="DIR",
                        help="only check the tokenizer.json files the Swift tests wrote in DIR (BPE_WRITTEN_TOKENIZERS)")
    args = parser.parse_args()
    if args.check_written:
        return check_written(args.check_written)

    texts = CORPUS + seeded_texts(40, seed=2027)
    written = tokenizers_to_write()
    plain_bytes()
    rng = random.Random(5)
    results = {}
    for name, tokenizer in written.items():
        tokenizer.no_truncation()
        tokenizer.no_padding()
        # The printable-ASCII tokenizers' ids of the first texts only (about one per byte there).
        covered = texts[:SHORT_CORPUS] if name in PRINTABLE_ASCII else texts
        ids = [tokenizer.encode(text).ids for text in covered]
        long_ids = tokenizer.encode("\n".join(texts) * LONG_TEXT_REPEATS).ids
        decoded = [tokenizer.decode(row) for row in ids]
        lists = random_id_lists(rng, tokenizer.get_vocab_size())
        results[name] = {
            "vocabulary_size": tokenizer.get_vocab_size(),
            "ids": ids,
            "decoded_where_different": [None if d == t else d for d, t in zip(decoded, covered)],
            "long_text": {"count": len(long_ids), "checksum": checksum(long_ids)},
            "random_ids": lists,
            "random_decoded": [tokenizer.decode(row) for row in lists],
        }
        with_special = [tokenizer.decode(row, skip_special_tokens=False) for row in lists]
        if with_special != results[name]["random_decoded"]:
            results[name]["random_decoded_with_special"] = with_special
    path = HERE / "bpe_tokenizer_ids.json"
    document = {"versions": versions(), "texts": texts, "long_text_repeats": LONG_TEXT_REPEATS, "tokenizers": results}
    path.write_text(json.dumps(document,
                               ensure_ascii=True, separators=(",", ":")) + "\n")
    print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size // 1024} KB)")
    if args.sweep:
        sweep(args.sweep, written)


def check_written(folder: Path) -> None:
    """The files ByteLevelBPETokenizer.write(to:) wrote load in the library and give the fixture's ids."""
    reference = json.loads((HERE / "bpe_tokenizer_ids.json").read_text())
    for name, expected in reference["tokenizers"].items():
        tokenizer = Tokenizer.from_file(str(folder / name / "tokenizer.json"))
        for text, ids in zip(reference["texts"], expected["ids"]):
            assert tokenizer.encode(text).ids == ids, (name, text)
        for ids, decoded in zip(expected["random_ids"], expected["random_decoded"]):
            assert tokenizer.decode(ids) == decoded, (name, ids)
        print(f"{name}: the file written in Swift gives the same ids and decodes")


def sweep(path: Path, written: dict[str, Tokenizer]) -> None:
    """Per code point c, the lengths in bytes of the pieces each pre-tokenizer cuts a probe around c into."""
    probes = [written["bpe-1000"].pre_tokenizer, written["bpe-8000"].pre_tokenizer,
              written["bpe-added"].pre_tokenizer, written["bpe-digits"].pre_tokenizer]
    with open(path, "w") as out:
        for point in range(0x110000):
            if 0xD800 <= point <= 0xDFFF:
                continue
            c = chr(point)
            probe = f"{c}a{c}1{c} {c}  {c}!{c}\n{c}{c}'{c}"
            fields = ["%x" % point]
            for pre_tokenizer in probes:
                # A byte-level piece has one character per byte of the text.
                fields.append(",".join(str(len(piece)) for piece, _ in pre_tokenizer.pre_tokenize_str(probe)))
            out.write(" ".join(fields) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
