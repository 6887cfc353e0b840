# hearme: one stateless server process (or --workers N) per container.
# Build:  docker build -t hearme .
# Run:    docker run -p 8000:8000 -v hearme-data:/data hearme
#         (PostgreSQL: -e HEARME_DATABASE_URL=postgresql+psycopg://user:pass@host/db)
# Key:    docker run --rm -v hearme-data:/data hearme hearme keys create --name me --role admin

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/hearme
WORKDIR /src
COPY pyproject.toml README.md ./
COPY alembic ./alembic
COPY api ./api
COPY service ./service
COPY schemas ./schemas
RUN /opt/hearme/bin/pip install --no-cache-dir .

FROM python:3.11-slim
ENV PATH=/opt/hearme/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HEARME_DATABASE_URL=sqlite:////data/hearme.db
RUN groupadd --system --gid 10001 hearme \
    && useradd --system --uid 10001 --gid hearme --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin hearme \
    && mkdir -p /app /data \
    && chown hearme:hearme /app /data
COPY --from=build /opt/hearme /opt/hearme
WORKDIR /app
USER hearme
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# `serve` migrates the database to head first; with several replicas on one PostgreSQL,
# run `hearme db upgrade` once before rolling out instead.
CMD ["hearme", "serve", "--host", "0.0.0.0", "--port", "8000"]
