FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY scenarios ./scenarios
RUN pip install --no-cache-dir .
EXPOSE 8000 8001
CMD ["factcheck", "serve", "--host", "0.0.0.0"]
