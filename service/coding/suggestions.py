"""Coding suggestions: the categories whose keywords occur in an answer (issue 4, part 5).

A coder confirms or rejects them; they are computed on demand and never stored, so they
never count as codings. `Matcher` is pure (text in, suggestions out); `suggest_codings`
only finds the answer and codebook for it.

Matching is on Snowball (Porter 2) stems, word by word, so case and inflection do not
matter ("listen" finds "Listening", "listened", "listens"), and a keyword of several words
("long-term", "self esteem") matches only those words in that order, with nothing but spaces
or hyphens between them. A keyword word ending in `*` matches any word that begins with it
("resilien*"), for the forms Snowball does not conflate.

Offsets are Python string indices, that is Unicode code points of the stored answer.
"""

import itertools
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import snowballstemmer
from sqlmodel import Session

from schemas.codebooks import CodebookPublic, ThemeIn
from schemas.suggestions import Span, Suggestion
from schemas.texts import resolve
from service.coding.codebooks import get_codebook
from service.keys import Principal
from service.permissions import Action, require
from service.responses import visible_response

# A word: letters or digits, with inner apostrophes ("child's", "don't").
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
# In a keyword, a word may end in `*` (a prefix).
_KEYWORD_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*\*?")
# What may stand between two words of a phrase: spaces, hyphens and dashes, no punctuation.
_PHRASE_GAP = re.compile(r"[\s\-\u2010\u2011\u2012\u2013\u2014]*")


@dataclass(frozen=True)
class _Word:
    start: int
    end: int
    folded: str
    stem: str


@dataclass(frozen=True)
class _Part:
    """One word of a keyword: a stem to equal, or a prefix to begin with."""

    value: str
    prefix: bool

    def matches(self, word: _Word) -> bool:
        return word.folded.startswith(self.value) if self.prefix else word.stem == self.value


@dataclass(frozen=True)
class _Keyword:
    text: str
    parts: tuple[_Part, ...]


@dataclass
class _Category:
    id: str
    theme: str
    label: str
    keywords: list[_Keyword] = field(default_factory=list)


class Matcher:
    """A codebook's keywords, stemmed once, to run over many answers.

    Not shared between threads: a Snowball stemmer keeps state while it works.
    """

    def __init__(self, themes: Sequence[ThemeIn]) -> None:
        self._stemmer = snowballstemmer.stemmer("english")
        self._stems: dict[str, str] = {}
        self._categories = [
            _Category(
                id=category.id,
                theme=theme.id,
                label=resolve(category.label),
                keywords=[k for text in category.keywords if (k := self._keyword(text))],
            )
            for theme in themes
            for category in theme.categories
        ]

    def _fold(self, word: str) -> str:
        return word.casefold().replace("\u2019", "'")

    def _stem(self, folded: str) -> str:
        stem = self._stems.get(folded)
        if stem is None:
            stem = self._stems[folded] = str(self._stemmer.stemWord(folded))
        return stem

    def _keyword(self, text: str) -> _Keyword | None:
        parts = []
        for match in _KEYWORD_WORD.finditer(text):
            folded = self._fold(match.group())
            if folded.endswith("*"):
                parts.append(_Part(folded[:-1], prefix=True))
            else:
                parts.append(_Part(self._stem(folded), prefix=False))
        return _Keyword(text, tuple(parts)) if parts else None

    def _words(self, text: str) -> list[_Word]:
        words = []
        for match in _WORD.finditer(text):
            folded = self._fold(match.group())
            words.append(_Word(match.start(), match.end(), folded, self._stem(folded)))
        return words

    def _occurrences(
        self, text: str, words: list[_Word], keyword: _Keyword
    ) -> Iterator[tuple[int, int]]:
        n = len(keyword.parts)
        for i in range(len(words) - n + 1):
            window = words[i : i + n]
            if not all(
                part.matches(word) for part, word in zip(keyword.parts, window, strict=True)
            ):
                continue
            if any(
                not _PHRASE_GAP.fullmatch(text, before.end, after.start)
                for before, after in itertools.pairwise(window)
            ):
                continue
            yield window[0].start, window[-1].end

    def suggest(self, text: str) -> list[Suggestion]:
        """The categories (in codebook order) with a keyword in `text`, with where."""
        words = self._words(text)
        suggestions = []
        for category in self._categories:
            matched: list[str] = []
            spans: set[tuple[int, int]] = set()
            for keyword in category.keywords:
                found = list(self._occurrences(text, words, keyword))
                if found:
                    if keyword.text not in matched:
                        matched.append(keyword.text)
                    spans.update(found)
            if matched:
                suggestions.append(
                    Suggestion(
                        category=category.id,
                        theme=category.theme,
                        label=category.label,
                        keywords=matched,
                        spans=[Span(start=a, end=b, text=text[a:b]) for a, b in sorted(spans)],
                    )
                )
        return suggestions


_matchers = threading.local()  # a Matcher is not thread-safe: one cache per thread
MATCHERS_PER_THREAD = 64


def matcher_of(codebook: CodebookPublic) -> Matcher:
    """The codebook's Matcher, stemmed once per version (and thread), not per answer."""
    cache: dict[tuple[object, ...], Matcher] = getattr(_matchers, "cache", None) or {}
    _matchers.cache = cache
    key = (codebook.survey, codebook.question, codebook.version, codebook.updated_at)
    matcher = cache.get(key)
    if matcher is None:
        if len(cache) >= MATCHERS_PER_THREAD:
            cache.clear()
        matcher = cache[key] = Matcher(codebook.themes)
    return matcher


def suggest_for_text(
    principal: Principal, *, codebook: CodebookPublic, text: str
) -> list[Suggestion]:
    """The suggestions for an answer already read under the caller's rights (the coding
    workbench has it from the queue, and the codebook too)."""
    require(principal, Action.read_suggestions)
    if not text.strip():
        return []
    return matcher_of(codebook).suggest(text)


def suggest_codings(
    session: Session, *, principal: Principal, survey_id: str, response_id: str, question_id: str
) -> list[Suggestion]:
    """The suggestions for one stored answer, for whoever may code it (its site's keys)."""
    require(principal, Action.read_suggestions)
    response = visible_response(session, principal, survey_id=survey_id, response_id=response_id)
    codebook = get_codebook(
        session, principal=principal, survey_id=survey_id, question_id=question_id
    )
    answer = response.answers.get(question_id)
    if not isinstance(answer, str):
        return []
    return suggest_for_text(principal, codebook=codebook, text=answer)
