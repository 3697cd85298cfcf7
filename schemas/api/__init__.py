"""The HTTP API's request and response models and its problem codes (issue 9).

These pydantic classes are the API's OpenAPI schema (FastAPI generates `/openapi.json` from them),
and a client — `kpsandbox trigger`, the tests — can use them to read answers.
"""
