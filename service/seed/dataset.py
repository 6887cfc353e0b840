"""The seed study of ``hearme demo``: a survey, its codebook and 204 synthetic responses.

The demo study is the midway survey of Lefevre, Hickle, Luckock and Ruch (2017), "Building
trust with children and young people at risk of Child Sexual Exploitation: the professional
challenge", British Journal of Social Work, doi:10.1093/bjsw/bcw181. The paper publishes only
aggregate figures, so this module builds a synthetic data set, deterministically, whose
statistics reproduce the paper's tables exactly:

* Table 1 - the professional roles of the 204 participants;
* Table 2 - how confident they felt in enabling a child to trust them enough to disclose CSE;
* Table 3 - how many of the 202 respondents who answered the open question gave material
  relating to each of its 28 categories (four themes: 147, 121, 143 and 21 mentions).

The demographic figures of the paper's text (73.4% female, 60% aged 35-54, over 80% White
British, 60% directly involved in a CSE case, time in post from a few weeks to 25 years) hold
too. Every open answer is free text composed from phrasings of its categories, and each
phrasing contains a keyword of its category, so that keyword-based coding suggestions can find
it. No real respondent's answer is reproduced; the texts are invented.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, Final, TypeVar

_T = TypeVar("_T")

SURVEY_ID: Final = "smhm-professionals"
WAVE: Final = "midway"
TEXT_QUESTION: Final = "trust_actions"
SEED: Final = 2017
N_RESPONSES: Final = 204
N_BLANK: Final = 2

SITE_COUNTS: Final[tuple[tuple[str, int], ...]] = (("site-1", 80), ("site-2", 70), ("site-3", 54))

# Table 1, in the paper's order.
ROLE_COUNTS: Final[tuple[tuple[str, int], ...]] = (
    ("la_social_work", 46),
    ("police", 38),
    ("youth_interventions", 24),
    ("education", 19),
    ("health", 18),
    ("family_support", 15),
    ("senior_management", 10),
    ("other", 34),
)

# Table 2.
LIKERT_COUNTS: Final[tuple[tuple[int, int], ...]] = ((1, 17), (2, 53), (3, 53), (4, 73), (5, 8))

# Table 3, in the paper's (and the codebook's) order.
CATEGORY_COUNTS: Final[tuple[tuple[str, int], ...]] = (
    # Theme 1: Relationship-based practice (147)
    ("rapport", 28),
    ("spending_time", 26),
    ("over_time", 22),
    ("use_of_self", 20),
    ("safe_relationship", 19),
    ("supportive", 16),
    ("cared_about", 10),
    ("available", 6),
    # Theme 2: Child-centred practice (121)
    ("listening", 43),
    ("child_led", 18),
    ("pace", 17),
    ("environment", 15),
    ("empathic", 10),
    ("information", 9),
    ("communication", 9),
    # Theme 3: An ethically-grounded approach (143)
    ("non_judgemental", 41),
    ("honest", 35),
    ("reliable", 24),
    ("believing", 9),
    ("boundaries", 8),
    ("fault", 8),
    ("confidentiality", 6),
    ("trust_in_child", 4),
    ("respectful", 4),
    ("fair", 3),
    ("rights", 1),
    # Theme 4: Being skilled and knowledgeable in relation to working with CSE (21)
    ("competence", 13),
    ("cse_dynamics", 8),
)

# How many categories each of the 202 answers expresses: 67 + 66 + 43 + 26 = 202 answers,
# 67 + 132 + 129 + 104 = 432 category mentions, the sum of Table 3.
ANSWER_SIZES: Final[tuple[tuple[int, int], ...]] = ((1, 67), (2, 66), (3, 43), (4, 26))

# 149 of the 203 who answered are female (73.4%); one respondent skipped the question.
GENDER_COUNTS: Final[tuple[tuple[str | None, int], ...]] = (
    ("female", 149),
    ("male", 52),
    ("prefer_not_to_say", 2),
    (None, 1),
)

# 122 of 204 (59.8%, "60%") aged 35-54.
AGE_COUNTS: Final[tuple[tuple[str, int], ...]] = (
    ("under_25", 8),
    ("25_34", 52),
    ("35_44", 64),
    ("45_54", 58),
    ("55_plus", 22),
)

# 166 of 204 (81.4%) White British; the paper's named groups; a few others.
ETHNICITY_COUNTS: Final[tuple[tuple[str, int], ...]] = (
    ("white_british", 166),
    ("white_irish", 4),
    ("white_other", 8),
    ("black_caribbean", 8),
    ("mixed_white_black_caribbean", 5),
    ("asian_indian", 3),
    ("asian_pakistani", 3),
    ("black_african", 3),
    ("mixed_white_asian", 2),
    ("other", 1),
    ("prefer_not_to_say", 1),
)

# 122 of 204 (59.8%, "60%") directly involved in a CSE case.
N_CSE_INVOLVED: Final = 122

YEARS_MIN: Final = 0.1
YEARS_MAX: Final = 25.0
_YEARS_CAP: Final[dict[str, float]] = {
    "under_25": 4.0,
    "25_34": 10.0,
    "35_44": 18.0,
    "45_54": 25.0,
    "55_plus": 25.0,
}

# Mild associations: front-line roles are more often directly involved in cases (the others
# being "in managerial, supervisory or strategic roles") and a little more confident.
_ROLE_INVOLVEMENT: Final[dict[str, float]] = {
    "la_social_work": 1.0,
    "police": 0.8,
    "youth_interventions": 0.6,
    "education": 0.0,
    "health": 0.2,
    "family_support": 0.4,
    "senior_management": -1.0,
    "other": 0.0,
}
_ROLE_CONFIDENCE: Final[dict[str, float]] = {
    "la_social_work": 0.5,
    "police": 0.5,
    "youth_interventions": 0.4,
    "education": -0.2,
    "health": 0.0,
    "family_support": 0.2,
    "senior_management": -0.1,
    "other": -0.3,
}

_WINDOW_START: Final = datetime(2015, 7, 1, tzinfo=UTC)
_WINDOW_DAYS: Final = 123  # 1 July to 31 October 2015 inclusive


@dataclass(frozen=True)
class Phrasing:
    """Ways a respondent may express one category.

    ``fragments`` are bare noun or verb phrases ("listening"), usable alone ("Listening.") or in
    a list; ``clauses`` follow an opener such as "I need to" (``{me}``/``{my}`` take the
    opener's person); ``sentences`` stand alone. Every one contains a keyword of the category.
    """

    fragments: tuple[str, ...]
    clauses: tuple[str, ...]
    sentences: tuple[str, ...]

    def all(self) -> tuple[str, ...]:
        return self.fragments + self.clauses + self.sentences


PHRASES: Final[dict[str, Phrasing]] = {
    "rapport": Phrasing(
        ("rapport", "building rapport", "engagement", "a good relationship"),
        (
            "build a good rapport with them",
            "engage with the young person properly",
            "build a positive relationship with the child",
            "get them to engage before anything else",
            "form a bond with them",
        ),
        (
            "Building rapport is the key to everything.",
            "Without a good relationship they will not engage with you.",
            "It is all about engagement, and that has to come first.",
        ),
    ),
    "spending_time": Phrasing(
        ("time", "spending time with them", "time to chat"),
        (
            "spend time with them doing normal things",
            "make time to chat about everyday life, not just CSE",
            "do activities together so it is not all about the risks",
            "spend proper time with them and not be looking at {my} watch",
        ),
        (
            "Spending time with them is essential.",
            "Young people need time with a worker where they can just chat.",
            "Taking them for a walk or a coffee and chatting about their week works better "
            "than an office.",
        ),
    ),
    "over_time": Phrasing(
        ("a long-term relationship", "building things up gradually"),
        (
            "build the relationship up gradually",
            "commit to working with them long-term",
            "keep seeing them week after week",
            "accept that it can take months before they say anything",
        ),
        (
            "Trust builds gradually; it will not happen in one visit.",
            "It takes weeks and months, not one meeting.",
            "Short-term work rarely gets there - it needs a long-term relationship.",
        ),
    ),
    "use_of_self": Phrasing(
        ("kindness", "warmth", "being kind", "a friendly manner"),
        (
            "be warm and friendly",
            "stay calm and not get frustrated by their behaviour",
            "be gentle and approachable",
            "show kindness even when they are being challenging",
        ),
        (
            "Be yourself - warm, calm and friendly.",
            "A kind and gentle manner goes a long way.",
            "They respond to workers who are warm and down to earth.",
        ),
    ),
    "safe_relationship": Phrasing(
        ("feeling safe", "safety", "making them feel safe"),
        (
            "make sure the child feels safe with {me}",
            "be a safe adult they can turn to",
            "help them feel secure in the relationship",
        ),
        (
            "They need to feel safe with you before they will say anything.",
            "A relationship where they feel secure is the starting point.",
        ),
    ),
    "supportive": Phrasing(
        ("support", "being supportive", "building their self-esteem"),
        (
            "be supportive and build up their self-esteem",
            "help them build resilience",
            "support them and empower them to expect better relationships",
            "offer ongoing support whatever happens",
        ),
        (
            "A supportive relationship builds their confidence and resilience.",
            "They need to feel supported, not processed.",
        ),
    ),
    "cared_about": Phrasing(
        ("genuine care", "caring", "a real relationship"),
        (
            "show them genuine care",
            "make them feel cared about as a person and not a case",
            "make them the priority rather than the job requirements",
            "show that it is a real relationship, not just a job",
        ),
        (
            "They can tell whether you genuinely care or are just doing your job.",
            "Children need to feel that someone cares about them.",
            "It has to be a real relationship where they feel cared about.",
        ),
    ),
    "available": Phrasing(
        ("availability", "being available", "being accessible"),
        (
            "be available when they are ready to talk",
            "give them a mobile number so they can contact {me} without going through a "
            "switchboard",
            "be accessible and not hide behind a duty system",
            "make sure they can always contact {me}",
        ),
        (
            "Be available when they need you, not just at appointments.",
            "They should be able to contact their worker on a mobile, not through a switchboard.",
        ),
    ),
    "listening": Phrasing(
        ("listen", "listening", "active listening", "proper listening"),
        (
            "listen to them",
            "actively listen to what they are telling {me}",
            "take their concerns seriously",
            "make sure they feel heard",
            "listen without interrupting",
        ),
        (
            "They need to know they will be listened to and taken seriously.",
            "Listening is the most important thing.",
            "Children tell us again and again that nobody heard them.",
        ),
    ),
    "child_led": Phrasing(
        ("child-led", "child-led work", "letting them lead"),
        (
            "let the child lead the conversation",
            "work to their agenda rather than {my} own",
            "give them a choice about where and when we meet",
            "let the work be led by the young person",
        ),
        (
            "It has to be child-led.",
            "Go in without an agenda and let them lead.",
            "Following their wishes about how we work together makes a difference.",
        ),
    ),
    "pace": Phrasing(
        ("patience", "going at their pace", "no rushing"),
        (
            "go at the child's pace",
            "avoid rushing them or pressuring them to tell",
            "wait until they are ready",
            "be patient",
        ),
        (
            "You cannot rush it.",
            "Don't put pressure on them to disclose before they are ready.",
            "Work at their pace, not the pace of the court timetable.",
        ),
    ),
    "environment": Phrasing(
        ("a comfortable environment", "a safe space", "the right setting"),
        (
            "meet them in a setting where they feel comfortable",
            "provide a safe, comfortable environment",
            "give them a quiet space to talk",
            "keep meetings relaxed rather than formal",
        ),
        (
            "Where you meet matters - somewhere comfortable and not an office.",
            "A relaxed environment helps them let their guard down.",
        ),
    ),
    "empathic": Phrasing(
        ("empathy", "being empathic"),
        (
            "show empathy for what they have been through",
            "try to see things from their perspective",
            "be sympathetic to their situation",
        ),
        (
            "Empathy is vital.",
            "Put yourself in their shoes.",
            "Try to see it from the young person's perspective.",
        ),
    ),
    "information": Phrasing(
        ("clear explanations", "information", "explaining things"),
        (
            "explain what will happen next in terms they understand",
            "give them clear, age-appropriate information",
            "keep them informed about what is happening and why",
            "explain why professionals sometimes have to step in to protect them",
        ),
        (
            "Children need age-appropriate information about what happens next.",
            "Explanations should be clear and pitched at their age.",
        ),
    ),
    "communication": Phrasing(
        ("good communication skills", "open-ended questions"),
        (
            "use language appropriate to their age",
            "ask open-ended questions",
            "pay attention to their body language as well as their words",
            "adapt {my} communication to the child",
        ),
        (
            "Good communication skills are essential.",
            "Use open-ended questions and let them talk.",
            "Notice the non-verbal cues, not just what they say.",
        ),
    ),
    "non_judgemental": Phrasing(
        ("non-judgemental", "being non-judgemental", "no judgement"),
        (
            "be non-judgemental",
            "avoid judging them or their friends",
            "avoid looking shocked at what they say",
            "approach them without preconceptions",
            "accept them for who they are",
        ),
        (
            "A non-judgemental approach is crucial.",
            "They will shut down if they feel judged.",
            "Do not act shocked, whatever they tell you.",
        ),
    ),
    "honest": Phrasing(
        ("honesty", "being honest", "openness and honesty"),
        (
            "always be open and honest with them",
            "be clear and direct about {my} role",
            "be upfront about what can and cannot happen",
            "be transparent about what happens next",
        ),
        (
            "Honesty is essential, even when it is hard.",
            "Be direct and honest - they see through anything else.",
        ),
    ),
    "reliable": Phrasing(
        ("consistency", "reliability", "being consistent"),
        (
            "be reliable and keep {my} promises",
            "keep going back and be persistent even when they push {me} away",
            "be consistent",
            "stick with them however hard it gets",
        ),
        (
            "Consistency is key.",
            "Keep promises and turn up when you say you will.",
            "Persistence - keep turning up even when they tell you to go away.",
        ),
    ),
    "believing": Phrasing(
        ("believing them", "belief in the child"),
        (
            "believe what they tell {me}",
            "make sure they feel believed",
            "let them know they are believed",
        ),
        (
            "They need to be believed.",
            "Believe the child.",
        ),
    ),
    "boundaries": Phrasing(
        ("clear boundaries", "boundaries"),
        (
            "set clear and appropriate boundaries",
            "be clear about the boundaries of the relationship",
            "show them where the limits are",
        ),
        (
            "Clear boundaries make them feel contained.",
            "They need to know the boundaries from the start.",
        ),
    ),
    "fault": Phrasing(
        ("reassurance that it is not their fault", "no blame"),
        (
            "reassure them that it is not their fault",
            "make sure they know they are not to blame",
            "help them see that the abuser is responsible, not them",
        ),
        (
            "They need to know it is not their fault.",
            "Take away the guilt - the blame lies with the abuser.",
        ),
    ),
    "confidentiality": Phrasing(
        ("confidentiality", "privacy"),
        (
            "be clear from the start about the limits of confidentiality",
            "tell them before sharing anything with other agencies",
            "keep private things private unless they need to be shared",
        ),
        (
            "Confidentiality matters, but be clear about when you would have to share things.",
            "Think carefully about their privacy before writing things on their file.",
        ),
    ),
    "trust_in_child": Phrasing(
        ("mutual trust", "trust being two-way"),
        (
            "show them that trust is two-way",
            "treat them as someone who can be trusted",
            "be trusting of them as well",
        ),
        (
            "Trust has to be mutual - show that you trust them too.",
            "They need to feel trusted themselves.",
        ),
    ),
    "respectful": Phrasing(
        ("respect", "being respectful"),
        (
            "treat them with respect",
            "show respect for their views",
            "be respectful and treat them with dignity",
        ),
        (
            "Respect is everything to these young people.",
            "Treat them with dignity and respect.",
        ),
    ),
    "fair": Phrasing(
        ("fairness", "being fair"),
        (
            "treat them fairly",
            "be fair and even-handed",
            "make sure they are treated fairly and as equals",
        ),
        (
            "Be fair with them.",
            "They notice straight away if they are not treated fairly.",
        ),
    ),
    "rights": Phrasing(
        ("children's rights", "their rights"),
        (
            "uphold their rights and their voice",
            "recognise their rights and autonomy",
            "promote their rights, not just their protection",
        ),
        (
            "Young people have rights and a voice, and we should promote them.",
            "Recognise their agency and their rights.",
        ),
    ),
    "competence": Phrasing(
        ("competence", "being competent in CSE work"),
        (
            "demonstrate {my} competence in working with CSE",
            "show them they are dealing with someone capable of helping",
            "respond well to small or partial disclosures",
            "be properly trained and skilled in CSE work",
        ),
        (
            "Children need confidence that the worker is competent and will act.",
            "How you respond to a partial disclosure decides whether they tell you the rest.",
            "They need to see that you are capable of actually doing something.",
        ),
    ),
    "cse_dynamics": Phrasing(
        ("knowledge of CSE dynamics", "understanding grooming"),
        (
            "understand the dynamics of CSE",
            "understand how grooming works and why they may defend their abuser",
            "recognise that they may not see themselves as a victim",
            "understand how coercion and exploitation affect young people",
        ),
        (
            "You need a good understanding of exploitation and grooming.",
            "Many do not see themselves as victims, so you have to understand the dynamics.",
        ),
    ),
}

# (opener, object pronoun, possessive) - the opener's person fills {me} and {my} of clauses.
OPENERS: Final[tuple[tuple[str, str, str], ...]] = (
    ("", "you", "your"),
    ("I need to", "me", "my"),
    ("I would", "me", "my"),
    ("I try to", "me", "my"),
    ("I have to", "me", "my"),
    ("I think I need to", "me", "my"),
    ("You need to", "you", "your"),
    ("You have to", "you", "your"),
    ("You must", "you", "your"),
    ("I think you need to", "you", "your"),
    ("In my experience you have to", "you", "your"),
    ("We need to", "us", "our"),
    ("As professionals we must", "us", "our"),
)
PREAMBLES: Final[tuple[str, ...]] = (
    "Difficult to sum up in a few words.",
    "Speaking from experience.",
    "This is not easy with CSE.",
    "It depends on the child.",
)
CLOSERS: Final[tuple[str, ...]] = (
    "Every child is different.",
    "Easier said than done.",
    "That is the most I can say.",
)


@dataclass(frozen=True)
class SeedResponse:
    """One synthetic midway response and the Table 3 categories its open answer expresses."""

    site: str
    wave: str
    submitted_at: str
    answers: dict[str, Any]
    categories: tuple[str, ...]

    def as_submission(self) -> dict[str, Any]:
        """The response as a §5 submission body (also one NDJSON import line)."""
        return {
            "site": self.site,
            "wave": self.wave,
            "submitted_at": self.submitted_at,
            "answers": dict(self.answers),
        }


def _load_json(name: str) -> dict[str, Any]:
    text = resources.files("service.seed").joinpath(name).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def load_survey() -> dict[str, Any]:
    """The seed survey definition, in the form of CONTRACT §4."""
    return _load_json("survey.json")


def load_codebook() -> dict[str, Any]:
    """The codebook of the question ``trust_actions``, in the form of CONTRACT §6."""
    return _load_json("codebook.json")


def _expand(counts: tuple[tuple[_T, int], ...]) -> list[_T]:
    return [value for value, n in counts for _ in range(n)]


def _distribute(rng: random.Random, sizes: list[int]) -> list[list[str]]:
    """Deal the Table 3 mentions into answers of the given sizes, no category twice in one."""
    tokens = _expand(CATEGORY_COUNTS)
    if len(tokens) != sum(sizes):
        raise RuntimeError("answer sizes do not add up to the Table 3 mentions")
    rng.shuffle(tokens)
    bins: list[list[str]] = []
    start = 0
    for size in sizes:
        bins.append(tokens[start : start + size])
        start += size
    for _ in range(10_000):
        clash = next(
            ((i, j) for i, b in enumerate(bins) for j in range(len(b)) if b[j] in b[:j]),
            None,
        )
        if clash is None:
            return bins
        i, j = clash
        token = bins[i][j]
        swaps = [
            (k, m)
            for k, other in enumerate(bins)
            if k != i and token not in other
            for m, candidate in enumerate(other)
            if candidate not in bins[i]
        ]
        k, m = rng.choice(swaps)
        bins[i][j], bins[k][m] = bins[k][m], token
    raise RuntimeError("could not deal the Table 3 categories into answers")


def _join(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _clause(rng: random.Random, category: str, me: str, my: str) -> str:
    clause = rng.choice(PHRASES[category].clauses)
    return clause.replace("{me}", me).replace("{my}", my)


def _opened(opener: str, body: str) -> str:
    return f"{opener} {body}." if opener else _capital(body) + "."


def compose_answer(rng: random.Random, categories: list[str]) -> str:
    """Free text a professional might write that expresses exactly ``categories``, in order."""
    opener, me, my = rng.choice(OPENERS)
    if len(categories) == 1:
        (category,) = categories
        style = rng.choices(("fragment", "sentence", "clause"), weights=(4, 3, 3))[0]
        if style == "fragment":
            return _capital(rng.choice(PHRASES[category].fragments)) + "."
        if style == "sentence":
            return rng.choice(PHRASES[category].sentences)
        return _opened(opener, _clause(rng, category, me, my))

    style = rng.choices(("fragments", "list", "sentences", "mixed"), weights=(2, 3, 3, 2))[0]
    if style == "fragments":
        parts = [_capital(_join([rng.choice(PHRASES[c].fragments) for c in categories])) + "."]
    elif style == "list":
        parts = [_opened(opener, _join([_clause(rng, c, me, my) for c in categories]))]
    elif style == "sentences":
        parts = []
        for category in categories:
            if rng.random() < 0.35:
                other, o_me, o_my = rng.choice(OPENERS)
                parts.append(_opened(other, _clause(rng, category, o_me, o_my)))
            else:
                parts.append(rng.choice(PHRASES[category].sentences))
    else:
        split = rng.randint(1, len(categories) - 1)
        head = [_clause(rng, c, me, my) for c in categories[:split]]
        parts = [_opened(opener, _join(head))]
        parts += [rng.choice(PHRASES[c].sentences) for c in categories[split:]]
    if rng.random() < 0.12:
        parts.insert(0, rng.choice(PREAMBLES))
    if rng.random() < 0.1:
        parts.append(rng.choice(CLOSERS))
    return " ".join(parts)


def _ranked(scores: list[float]) -> list[int]:
    """Indices ordered by ascending score (stable)."""
    return sorted(range(len(scores)), key=lambda i: scores[i])


def _timestamps(rng: random.Random, n: int) -> list[str]:
    moments: list[datetime] = []
    for _ in range(n):
        day = rng.randrange(_WINDOW_DAYS)
        seconds = rng.randrange(8 * 3600, 20 * 3600)
        moments.append(_WINDOW_START + timedelta(days=day, seconds=seconds))
    return [m.strftime("%Y-%m-%dT%H:%M:%SZ") for m in sorted(moments)]


def generate_responses() -> list[SeedResponse]:
    """The 204 midway responses whose statistics reproduce the paper's Tables 1-3.

    Deterministic: a private ``random.Random(2017)``, never the global random state.
    Responses are in order of ``submitted_at``.
    """
    rng = random.Random(SEED)
    n = N_RESPONSES

    sites = _expand(SITE_COUNTS)
    rng.shuffle(sites)
    roles = _expand(ROLE_COUNTS)
    rng.shuffle(roles)
    ages = _expand(AGE_COUNTS)
    rng.shuffle(ages)
    genders = _expand(GENDER_COUNTS)
    rng.shuffle(genders)
    ethnicities = _expand(ETHNICITY_COUNTS)
    rng.shuffle(ethnicities)

    involvement_order = _ranked([_ROLE_INVOLVEMENT[r] + rng.gauss(0.0, 1.0) for r in roles])
    involved = [False] * n
    for i in involvement_order[n - N_CSE_INVOLVED :]:
        involved[i] = True

    years: list[float] = []
    for age in ages:
        raw = rng.random() ** 2 * _YEARS_CAP[age]
        years.append(min(YEARS_MAX, max(YEARS_MIN, round(raw, 1))))
    years[ages.index("55_plus")] = YEARS_MAX  # the paper's longest: 25 years
    years[ages.index("25_34")] = YEARS_MIN  # and its shortest: a few weeks

    confidence_scores = [
        _ROLE_CONFIDENCE[roles[i]] + 0.6 * involved[i] + 0.03 * years[i] + rng.gauss(0.0, 1.0)
        for i in range(n)
    ]
    likert = [0] * n
    for value, i in zip(_expand(LIKERT_COUNTS), _ranked(confidence_scores), strict=True):
        likert[i] = value

    blank = set(rng.sample(range(n), N_BLANK))
    answering = [i for i in range(n) if i not in blank]
    sizes = _expand(ANSWER_SIZES)
    rng.shuffle(sizes)
    dealt = _distribute(rng, sizes)
    order = {category: k for k, (category, _) in enumerate(CATEGORY_COUNTS)}

    texts = [compose_answer(rng, chosen) for chosen in dealt]
    # The paper's own example of a one-word answer: "just the word 'listen'".
    texts[dealt.index(["listening"])] = "Listen."

    times = _timestamps(rng, n)
    responses: list[SeedResponse] = []
    for i in range(n):
        answers: dict[str, Any] = {"role": roles[i]}
        gender = genders[i]
        if gender is not None:
            answers["gender"] = gender
        answers["age_band"] = ages[i]
        answers["ethnicity"] = ethnicities[i]
        answers["years_in_post"] = years[i]
        answers["cse_case_involvement"] = involved[i]
        answers["trust_confidence"] = likert[i]
        categories: tuple[str, ...] = ()
        if i not in blank:
            k = answering.index(i)
            chosen = dealt[k]
            answers[TEXT_QUESTION] = texts[k]
            categories = tuple(sorted(chosen, key=order.__getitem__))
        responses.append(
            SeedResponse(
                site=sites[i],
                wave=WAVE,
                submitted_at=times[i],
                answers=answers,
                categories=categories,
            )
        )
    _check(responses)
    return responses


def _check(responses: list[SeedResponse]) -> None:
    """Refuse to hand out a data set whose margins differ from the paper's."""
    mentions = {category: 0 for category, _ in CATEGORY_COUNTS}
    for response in responses:
        for category in response.categories:
            mentions[category] += 1
    problems = []
    if len(responses) != N_RESPONSES:
        problems.append("response count")
    if mentions != dict(CATEGORY_COUNTS):
        problems.append("Table 3")
    roles = [r.answers["role"] for r in responses]
    if {role: roles.count(role) for role, _ in ROLE_COUNTS} != dict(ROLE_COUNTS):
        problems.append("Table 1")
    likert = [r.answers["trust_confidence"] for r in responses]
    if {value: likert.count(value) for value, _ in LIKERT_COUNTS} != dict(LIKERT_COUNTS):
        problems.append("Table 2")
    if sum(TEXT_QUESTION not in r.answers for r in responses) != N_BLANK:
        problems.append("blank answers")
    if problems:
        raise RuntimeError("seed data set does not match the paper: " + ", ".join(problems))
