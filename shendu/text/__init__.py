"""Text pipeline: tokenizers, ``Vocab``, numericalisation, language-model batching and the
packaged Shakespeare corpus.

>>> from shendu.text import CharTokenizer, Vocab, numericalize, LMBatches, load_shakespeare
>>> text = load_shakespeare()[:2000]
>>> tok = CharTokenizer()
>>> vocab = Vocab.build([tok(text)])
>>> x, y = next(iter(LMBatches(numericalize(text, vocab, tok), batch_size=4, bptt=8)))
>>> x.shape, y.shape
((8, 4), (8, 4))
"""
from .batching import LMBatches, batchify, lm_batches, numericalize
from .datasets import load_shakespeare, load_text, shakespeare_path, split_text
from .tokenizers import CharTokenizer, WordTokenizer, get_tokenizer
from .vocab import SPECIALS, Vocab, build_vocab_from_iterator

__all__ = ["CharTokenizer", "WordTokenizer", "get_tokenizer", "Vocab", "SPECIALS",
           "build_vocab_from_iterator", "numericalize", "batchify", "LMBatches", "lm_batches",
           "load_text", "load_shakespeare", "shakespeare_path", "split_text"]
