FROM python:3.12-slim
# No C++ compiler needed: pytensor 3 (under pymc-marketing) compiles the models with Numba.
WORKDIR /app
COPY pyproject.toml README.md ./
COPY webapp webapp
COPY analytics analytics
COPY db db
COPY config config
COPY wsgi.py ./
# /var/cache/custseg: the snapshot files (CUSTSEG_CACHE_DIR); a volume mounted there starts as
# this directory, owned by the app's user.
RUN pip install --no-cache-dir . && useradd --create-home app \
    && mkdir -p /var/cache/custseg && chown app:app /var/cache/custseg
USER app
EXPOSE 8050
CMD ["gunicorn", "--bind", "0.0.0.0:8050", "wsgi:server"]
