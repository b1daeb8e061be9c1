"""Tokenizers against hand-written expectations."""
import pytest

from shendu.text import CharTokenizer, WordTokenizer, get_tokenizer

LINE = "O Romeo, Romeo! wherefore art thou Romeo? 'Tis well-a-day; don't 3 times."


def test_word_keep_punctuation_lowercase():
    assert WordTokenizer()(LINE) == [
        "o", "romeo", ",", "romeo", "!", "wherefore", "art", "thou", "romeo", "?", "'",
        "tis", "well-a-day", ";", "don't", "3", "times", "."]


def test_word_drop_punctuation_keep_case():
    assert WordTokenizer(lower=False, punctuation="drop")(LINE) == [
        "O", "Romeo", "Romeo", "wherefore", "art", "thou", "Romeo", "Tis", "well-a-day",
        "don't", "3", "times"]


def test_word_attach_and_custom_pattern():
    assert WordTokenizer(punctuation="attach")("To be, or not.") == ["to", "be,", "or", "not."]
    assert WordTokenizer(pattern=r"[a-z]+")("ab1cd") == ["ab", "cd"]
    assert WordTokenizer()("") == []


def test_word_unicode_letters():
    assert WordTokenizer()("Café — naïve!") == ["café", "—", "naïve", "!"]


def test_char_tokenizer():
    assert CharTokenizer()("Ab, c\n") == ["A", "b", ",", " ", "c", "\n"]
    assert CharTokenizer(lower=True, punctuation="drop")("Ab, c!") == ["a", "b", " ", "c"]


def test_get_tokenizer():
    assert get_tokenizer(None)("a  b\nc") == ["a", "b", "c"]
    assert get_tokenizer("char")("ab") == ["a", "b"]
    assert get_tokenizer("word", lower=False)("Hi!") == ["Hi", "!"]
    # torchtext's basic_english rules, worked by hand
    assert get_tokenizer("basic_english")('He said: "No; it\'s (fine)."<br />OK?') == [
        "he", "said", "no", "it", "'", "s", "(", "fine", ")", ".", "ok", "?"]
    f = str.upper
    assert get_tokenizer(f) is f


def test_errors():
    with pytest.raises(ValueError, match="punctuation must be one of"):
        WordTokenizer(punctuation="strip")
    with pytest.raises(ValueError, match="punctuation must be one of"):
        CharTokenizer(punctuation="attach")
    with pytest.raises(TypeError, match="expected a str"):
        WordTokenizer()(["a"])
    with pytest.raises(ValueError, match="unknown tokenizer"):
        get_tokenizer("spacy")
