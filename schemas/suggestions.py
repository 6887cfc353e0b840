"""Coding suggestions (issue 4, part 5): categories whose keywords occur in an answer."""

from pydantic import BaseModel, Field


class Span(BaseModel):
    """Where a keyword occurs: `text` is `answer[start:end]`, offsets in Unicode code points."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str


class Suggestion(BaseModel):
    """A category the coder may confirm; never stored, never counted as a coding."""

    category: str
    theme: str
    label: str
    keywords: list[str] = Field(description="The category's keywords found, in codebook order.")
    spans: list[Span] = Field(description="Every place they occur, in text order.")
