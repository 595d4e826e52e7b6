FROM python:3.12-slim
# No C++ compiler needed: pytensor 3 (under pymc-marketing) compiles the models with Numba.
WORKDIR /app
COPY pyproject.toml README.md ./
COPY webapp webapp
COPY analytics analytics
COPY db db
COPY config config
COPY wsgi.py ./
RUN pip install --no-cache-dir . && useradd --create-home app
USER app
EXPOSE 8050
CMD ["gunicorn", "--bind", "0.0.0.0:8050", "wsgi:server"]
