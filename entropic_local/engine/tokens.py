"""The token side of an ``Engine``: text to token ids and back, token pieces (cached), the
vocabulary's own texts, end-of-generation tokens. A mixin over the engine's ``_vocab``
(llama.cpp's vocabulary), ``n_vocab``, ``_pieces`` (a dict) and ``_eog`` (a set or None)."""

from __future__ import annotations

import ctypes

from ..errors import UsageError
from .backend import llama

__all__ = ["TokenMethods"]


class TokenMethods:
    def tokenize(self, text: str | bytes, add_special: bool = True, parse_special: bool = False) -> list[int]:
        data = text.encode("utf-8", errors="surrogatepass") if isinstance(text, str) else bytes(text)
        n_max = len(data) + 8
        buf = (llama.llama_token * n_max)()
        n = llama.llama_tokenize(self._vocab, data, len(data), buf, n_max, add_special, parse_special)
        if n < 0:  # buffer too small: -n is the size needed
            n_max = -n
            buf = (llama.llama_token * n_max)()
            n = llama.llama_tokenize(self._vocab, data, len(data), buf, n_max, add_special, parse_special)
            if n < 0:
                raise UsageError("text could not be tokenised")
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """The bytes of one token (control tokens render as nothing); cached per token."""
        p = self._pieces.get(token)
        if p is None:
            if not 0 <= token < self.n_vocab:
                raise UsageError(f"token id {token} is outside the vocabulary (0..{self.n_vocab - 1})")
            # a buffer of this call's own: ctypes releases the GIL, and a shared one let two
            # threads (detokenize beside a generation) cache each other's bytes
            buf = ctypes.create_string_buffer(256)
            n = llama.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = llama.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            p = buf.raw[:n]
            self._pieces[token] = p
        return p

    def token_text(self, token: int) -> str:
        """The vocabulary's own text for a token, special tokens included (``<|im_end|>``)."""
        raw = llama.llama_vocab_get_text(self._vocab, int(token))
        return raw.decode("utf-8", errors="replace") if raw else ""

    def token_texts(self) -> list[bytes]:
        """Every token's bytes as llama.cpp's detokenizer renders the token alone, special
        tokens as text (``llama_detokenize(..., remove_special=False, unparse_special=True)``,
        what DRY matches its sequence breakers against); computed once."""
        texts = getattr(self, "_token_texts", None)
        if texts is None:
            buf = ctypes.create_string_buffer(512)
            one = (llama.llama_token * 1)()
            texts = []
            for t in range(self.n_vocab):
                one[0] = t
                n = llama.llama_detokenize(self._vocab, one, 1, buf, len(buf), False, True)
                if n < 0:
                    big = ctypes.create_string_buffer(-n)
                    n = llama.llama_detokenize(self._vocab, one, 1, big, len(big), False, True)
                    texts.append(big.raw[:n])
                else:
                    texts.append(buf.raw[:n])
            self._token_texts = texts
        return texts

    def detokenize(self, tokens: list[int]) -> str:
        return b"".join(self.piece(int(t)) for t in tokens).decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        if self._eog is not None:
            return token in self._eog
        return bool(llama.llama_vocab_is_eog(self._vocab, token))

    @property
    def eog_tokens(self) -> frozenset[int]:
        if self._eog is None:
            return frozenset()
        return frozenset(self._eog)
