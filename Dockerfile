# The production image: one image for the web process and the workers.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY campaigns ./campaigns
COPY providers ./providers
COPY workers ./workers
COPY templates ./templates
RUN pip install --no-cache-dir . && useradd --create-home campaigns
USER campaigns
EXPOSE 8080
CMD ["campaigns", "serve", "--host", "0.0.0.0", "--port", "8080"]
