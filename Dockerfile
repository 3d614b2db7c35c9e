# One image for every role: the API (default), `stream worker`, `stream topics`
# and `stream check`. Build: docker build -t live-segments .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed, unprivileged uid so mounted volumes have a predictable owner.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/stream stream \
 && mkdir -p /var/lib/stream \
 && chown stream:stream /var/lib/stream

# Only what the package needs: the build context also holds var/ and .venv/.
# README.m[d] is a glob so the build still works while the README is absent.
WORKDIR /src
COPY pyproject.toml README.m[d] ./
COPY stream ./stream
RUN pip install . \
 && rm -rf /src

WORKDIR /home/stream
USER stream

# Inside a container the API must listen on every interface, and the worker's
# Faust data directory must be somewhere the unprivileged user can write.
ENV STREAM_API_HOST=0.0.0.0 \
    STREAM_DATA_DIR=/var/lib/stream/faust

# 8000: query API; 6066: the worker's web server (/metrics).
EXPOSE 8000 6066

CMD ["stream", "api"]
