# AzureML environment for the training pipeline steps and the drift job.
FROM python:3.11-slim-bookworm
COPY runtime-pins.txt mlflow-pins.txt training-requirements.txt /tmp/env/
RUN pip install --no-cache-dir -r /tmp/env/training-requirements.txt
