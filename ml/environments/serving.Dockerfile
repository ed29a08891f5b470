# AzureML scoring environment: the same pins as the local serving environment (.venv-serve).
# Managed online deployments with a scoring script only need `azmlinfsrv` on PATH.
FROM python:3.11-slim-bookworm
COPY runtime-pins.txt mlflow-pins.txt serving-requirements.txt /tmp/env/
RUN pip install --no-cache-dir -r /tmp/env/serving-requirements.txt
