"""Events and webhooks (contract §9): the outbox written with each change
(`outbox`), the feed read from it (`feed`), webhook subscriptions (`webhooks`), their
delivery by the server processes (`delivery`), and the address checks (`ssrf`).

Other services record their changes with `emit(session, type=..., survey=..., data=...)`.
"""

from service.events.outbox import emit

__all__ = ["emit"]
