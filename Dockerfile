# One image for every service of the stack; the command picks the service (see docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# gcc for the wheels that may need building (hiredis, msgspec, picows) on an uncommon platform
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN pip install . \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y

# never root: the services need no privilege
RUN useradd --system --uid 10001 --no-create-home arb
USER arb

ENTRYPOINT ["arb"]
CMD ["--help"]
