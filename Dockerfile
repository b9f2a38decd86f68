# The production image: one image for the web process and the workers.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md requirements.lock ./
COPY campaigns ./campaigns
COPY providers ./providers
COPY workers ./workers
COPY templates ./templates
# Exact versions: the image runs what CI tested.
RUN pip install --no-cache-dir . -c requirements.lock && useradd --create-home campaigns
USER campaigns
EXPOSE 8080
CMD ["campaigns", "serve", "--host", "0.0.0.0", "--port", "8080"]
