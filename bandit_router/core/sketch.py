"""A prompt's sketch: what it is about, as a small unit vector (hashed character n-grams).

Pure numpy, no model and no network. Only a bounded slice of the prompt is read (its head,
where a request says what it wants, and its tail, where it often repeats the question), so
the cost does not grow with the prompt's length. The hash is fixed (no per-process seed):
every replica and every rebuild sketches a prompt to the same vector.
"""

from __future__ import annotations

import numpy as np

DIM = 256  # 1 KiB of float32 per centroid; enough to tell a few dozen kinds apart
HEAD_CHARS, TAIL_CHARS = 1500, 500
_MIX = np.uint32(0x9E3779B1)  # Knuth's multiplicative hash constant (odd, 32-bit)
_SHIFT = np.uint32(32 - int(np.log2(DIM)))


def _byte_map() -> np.ndarray:
    """Bytes → normalised bytes: letters lower-cased, every digit the same digit (numbers
    differ between prompts of a kind), punctuation kept (code and SQL show in it), every
    whitespace one space."""
    table = np.arange(256, dtype=np.uint8)
    for c in range(ord("A"), ord("Z") + 1):
        table[c] = c + 32
    for c in range(ord("0"), ord("9") + 1):
        table[c] = ord("0")
    for c in b"\t\n\r\x0b\x0c":
        table[c] = ord(" ")
    return table


_BYTES = _byte_map()


def bounded(text: str) -> str:
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return f"{text[:HEAD_CHARS]} {text[-TAIL_CHARS:]}"


def sketch(text: str) -> np.ndarray:
    """The unit vector (float32, `DIM`) of the text's hashed 3- and 5-grams, each count
    square-rooted so a repeated phrase does not drown the rest; zeros for an empty text."""
    raw = np.frombuffer(f" {bounded(text)} ".encode("utf-8", "replace"), dtype=np.uint8)
    b = _BYTES[raw].astype(np.uint32)
    if b.size < 3:
        return np.zeros(DIM, dtype=np.float32)
    # rolling polynomial hashes, wrapping mod 2**32: the 5-grams extend the 3-grams
    h3 = (b[:-2] * np.uint32(257) + b[1:-1]) * np.uint32(257) + b[2:]
    h5 = (h3[:-2] * np.uint32(257) + b[3:-1]) * np.uint32(257) + b[4:]
    h = np.concatenate((h3, h5 + np.uint32(0x5BD1E995))) * _MIX
    # top bits pick the slot, the next bit the sign (signed hashing keeps it unbiased)
    counts = np.bincount(h >> (_SHIFT - np.uint32(1)), minlength=2 * DIM)
    signed = np.sqrt(counts[0::2]) - np.sqrt(counts[1::2])
    norm = float(np.sqrt(signed @ signed))
    return (signed / norm if norm > 0 else signed).astype(np.float32)
