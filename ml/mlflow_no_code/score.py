"""AzureML's no-code MLflow scoring, on the embedded local platform (serving: mlflow_no_code).

An AzureML deployment of an `mlflow_model` without code or environment runs AzureML's own scoring
script in AzureML's MLflow inference image. The local platform runs this file instead, with the same
server (azureml-inference-server-http, from .venv-serve), so that a local no-code rollout is gated
against what AzureML answers, not against modelops' entry point (ml/score.py):

    POST /score  {"input_data": {"columns": [...], "index": [...], "data": [[...], ...]}}
    →  200 [answer, ...]      the bare list pyfunc predict returns (labels, or values)
    →  400 {"message"}        from the server: a body that is not JSON, not an object, or without
                              "input_data"; 415 for a Content-Type other than application/json
    →  500 {"message": "An unexpected error occurred in scoring script. Check the logs for more info."}
                              anything predict refuses (a missing column, a text for a number, …)

What it follows: AzureML's script, Azure/azureml-assets
assets/inference/environments/mlflow-py312-inference/context/mlflow_score_script.py (MIT licence,
Copyright (c) Microsoft Corporation; last changed in d258c7ca, 2025-11-20), which the image's
Dockerfile copies to /var/mlflow_resources and names with AML_APP_ROOT and AZUREML_ENTRY_SCRIPT; the
model folder is AZUREML_MODEL_DIR joined with MLFLOW_MODEL_FOLDER. This is not a copy of it but a
re-implementation of its path for the models modelops manages — pyfunc models of tabular data —
made of the same parts, so that what decides an answer is the same code:
- the input example saved with the model (or, without one, the signature) is the sample of an
  inference_schema parameter type: a DataFrame → PandasParameterType(enforce_shape=False,
  orient="split"), an array → NumpyParameterType, named arrays → a dict of them;
- run(input_data, params=None) is decorated @input_schema("input_data", …), @input_schema("params",
  …, optional=True) and @output_schema(…), so the server passes the body's keys as arguments;
- an input_data that is not yet a frame or an array is parsed as the script does (a list → an array,
  a split dict → a frame, other dicts → named arrays); the answer is mlflow's
  _get_jsonable_obj(predict(...), pandas_orient="records").
The status codes and messages come from the server itself (server/input_parsers.py, routes.py), so
they are AzureML's. Checked against AzureML's script, run here in the same server on the iris
MLflow model: the same status and body for valid split frames (with and without an index, columns
reordered), an extra column (ignored), a boolean or 1e39 for a number (scored), a missing column, a
text or NaN for a number, {"input_data": [[...]]}, an empty frame (500), and the server's 400s.

Left out (AzureML's script has them): the transformers, LangChain and OpenAI flavours' input
parsing and the hftransformersv2 compatibility; the model data collector (azureml-ai-monitoring's
Collector, initialised in init(): a no-code deployment in Azure collects model_inputs/outputs with
it, which modelops does not read; here nothing is collected). Unknown: how the script answers
flavours other than tabular pyfunc models modelops does not manage.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from io import StringIO
from typing import Any

import numpy as np
import pandas as pd
from inference_schema.parameter_types.abstract_parameter_type import AbstractParameterType
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema
from mlflow.models import Model
from mlflow.pyfunc import load_model
from mlflow.pyfunc.scoring_server import _get_jsonable_obj

log = logging.getLogger(__name__)

MODEL_DIR = os.path.join(os.environ["AZUREML_MODEL_DIR"], os.environ.get("MLFLOW_MODEL_FOLDER", ""))


class Unchecked(AbstractParameterType):
    """A parameter without a sample: passed on as the JSON gave it (swagger: any object)."""

    def __init__(self) -> None:
        super().__init__(None)

    def deserialize_input(self, input_data: Any) -> Any:
        return input_data

    def input_to_swagger(self) -> dict[str, Any]:
        return {"type": "object", "example": {}}


def _batch_of_one(shape: Any) -> tuple[int, ...]:
    """A tensor's shape with its batch dimension (-1) as 1: a sample the swagger can show."""
    dims = list(shape or ())
    if dims and dims[0] == -1:
        dims[0] = 1
    return tuple(dims)


def _sample_of(schema: Any) -> Any:
    """A sample of the data a signature's schema (inputs or outputs) describes."""
    if schema is None:
        return None
    if schema.is_tensor_spec():
        if not schema.has_input_names():
            spec = schema.inputs[0]
            return np.zeros(_batch_of_one(spec.shape), dtype=spec.type)
        return {spec.name: np.zeros(_batch_of_one(spec.shape), dtype=spec.type) for spec in schema.inputs}
    frame = pd.DataFrame(columns=schema.input_names())
    return frame.astype(dict(zip(schema.input_names(), schema.pandas_types())))


def _input_example(meta: Model) -> Any:
    """The input example saved with the model, as the data it stands for; None without one."""
    info = meta.saved_input_example_info
    if not info:
        return None
    try:
        with open(os.path.join(MODEL_DIR, info["artifact_path"])) as handle:
            loaded = json.load(handle)
        if info.get("type") == "dataframe":
            orient = "split" if "columns" in loaded else "values"
            return pd.read_json(StringIO(json.dumps(loaded)), orient=orient, dtype=False)
        if info.get("type") == "ndarray":
            inputs = loaded["inputs"]
            return {k: np.asarray(v) for k, v in inputs.items()} if isinstance(inputs, dict) else np.asarray(inputs)
        return loaded
    except Exception as exc:  # as AzureML's script: fall back to the signature
        log.warning("the model's input example cannot be read (%s): the signature is the sample", exc)
        return None


def _parameter(sample: Any, orient: str) -> AbstractParameterType:
    if isinstance(sample, pd.DataFrame):
        return PandasParameterType(sample, enforce_shape=False, orient=orient)
    if isinstance(sample, np.ndarray):
        return NumpyParameterType(sample, enforce_shape=False)
    if isinstance(sample, dict):
        return StandardPythonParameterType({k: NumpyParameterType(np.asarray(v), enforce_shape=False)
                                            for k, v in sample.items()})
    return Unchecked()


def _params_sample(signature: Any) -> dict[str, Any] | None:
    params = getattr(signature, "params", None) if signature is not None else None
    if not params:
        return None
    typed = {"boolean": True, "string": "sample string", "integer": 42, "long": 42, "float": 0.15, "double": 0.15}
    return {p.name: p.default if p.default is not None else typed.get(str(p.dtype), None) for p in params.params}


_meta = Model.load(MODEL_DIR)
_signature = _meta.signature
_sample_input = _input_example(_meta)
if _sample_input is None and _signature is not None:
    _sample_input = _sample_of(_signature.inputs)
_sample_output = _sample_of(_signature.outputs) if _signature is not None else None
_params = _params_sample(_signature)
INPUT = _parameter(_sample_input, "split")
OUTPUT = _parameter(_sample_output, "records")
PARAMS = StandardPythonParameterType(_params) if _params else Unchecked()

model = load_model(MODEL_DIR)
_takes_params = "params" in inspect.signature(model.predict).parameters


def init() -> None:
    log.info("no-code MLflow scoring of %s (%s)", MODEL_DIR, ", ".join(_meta.flavors))


def _as_model_input(input_data: Any) -> Any:
    """input_data the parameter type left as JSON (a model without a sample) as the model's input."""
    if isinstance(input_data, str):
        input_data = json.loads(input_data)
    if isinstance(input_data, dict) and "input_data" in input_data:
        input_data = input_data["input_data"]
    if isinstance(input_data, list):
        return np.asarray(input_data)
    if isinstance(input_data, dict) and {"columns", "index", "data"} <= set(input_data):
        return pd.read_json(StringIO(json.dumps(input_data)), orient="split", dtype=False)
    return {name: np.asarray(value) for name, value in input_data.items()}


def _ready(input_data: Any) -> bool:
    if isinstance(input_data, (np.ndarray, pd.DataFrame)):
        return True
    return isinstance(input_data, dict) and bool(input_data) and \
        isinstance(next(iter(input_data.values())), np.ndarray)


@input_schema("input_data", INPUT)
@input_schema("params", PARAMS, optional=True)
@output_schema(OUTPUT)
def run(input_data: Any, params: Any = None) -> Any:
    data = input_data if _ready(input_data) else _as_model_input(input_data)
    result = model.predict(data, params=params) if _takes_params else model.predict(data)
    return _get_jsonable_obj(result, pandas_orient="records")
