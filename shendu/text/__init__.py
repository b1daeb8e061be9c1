"""Text: tokenizers, ``Vocab``, numericalisation, language-model batching, the packaged
Shakespeare corpus; language models (``lm``, ``train_lm``), encoder-decoders with attention
(``seq2seq``) and their decoding (``decoding``), word embeddings (``embeddings``), a
BiLSTM-CRF tagger (``tagging``) and generated tasks (``tasks``).

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
from .decoding import beam_search, beam_search_core, greedy_search
from .embeddings import GloVe, KeyedVectors, Word2Vec
from .lm import GPTLanguageModel, LSTMLanguageModel, evaluate_lm, generate, sample_next
from .seq2seq import BahdanauAttention, LuongAttention, Seq2Seq, TransformerSeq2Seq
from .tagging import BiLSTMCRF
from .tokenizers import CharTokenizer, WordTokenizer, get_tokenizer
from .vocab import SPECIALS, Vocab, build_vocab_from_iterator

__all__ = ["CharTokenizer", "WordTokenizer", "get_tokenizer", "Vocab", "SPECIALS",
           "build_vocab_from_iterator", "numericalize", "batchify", "LMBatches", "lm_batches",
           "load_text", "load_shakespeare", "shakespeare_path", "split_text",
           "LSTMLanguageModel", "GPTLanguageModel", "generate", "sample_next", "evaluate_lm",
           "Seq2Seq", "TransformerSeq2Seq", "BahdanauAttention", "LuongAttention",
           "beam_search", "beam_search_core", "greedy_search", "Word2Vec", "GloVe",
           "KeyedVectors", "BiLSTMCRF"]
