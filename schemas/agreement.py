"""Agreement between two coders of a question, and the answers they coded differently
(contract §6)."""

from pydantic import BaseModel


class CategoryAgreement(BaseModel):
    """Presence/absence of one category over the units: how often each coder gave it,
    how often both did, and how far they agree beyond chance."""

    id: str
    a_count: int
    b_count: int
    both: int
    percent_agreement: float | None
    kappa: float | None


class OverallAgreement(BaseModel):
    percent_agreement: float | None
    mean_kappa: float | None
    krippendorff_alpha: float | None


class AgreementPublic(BaseModel):
    question: str
    coders: list[str]
    n_units: int
    categories: list[CategoryAgreement]
    overall: OverallAgreement


class Discrepancy(BaseModel):
    """An answer the two coders coded with different sets, and the consensus if any."""

    response_id: str
    a: list[str]
    b: list[str]
    consensus: list[str] | None
