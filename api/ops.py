"""Operations endpoints (contract §8): liveness, readiness, metrics. No auth."""

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.exc import SQLAlchemyError

from api.deps import get_database, get_settings
from service.database import Database, ping
from service.settings import Settings

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "The database is not reachable."}})
def readyz(database: Annotated[Database, Depends(get_database)]) -> JSONResponse:
    """The database answers."""
    try:
        ping(database.engine)
    except SQLAlchemyError:
        return JSONResponse(
            {"status": "unavailable"}, status_code=503, headers={"Retry-After": "2"}
        )
    return JSONResponse({"status": "ok"})


@router.get("/metrics", response_class=Response)
def metrics(settings: Annotated[Settings, Depends(get_settings)]) -> Response:
    """Prometheus metrics; summed over worker processes when several serve."""
    registry = REGISTRY
    if settings.prometheus_multiproc_dir:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=settings.prometheus_multiproc_dir)  # type: ignore[no-untyped-call]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
