"""One function per control-plane call, with the paths, query parameters and bodies the
official ``fireworks-ai`` SDK uses (so ``hearthctl`` and the SDK drive the same API).

IDs are plain resource IDs; ``account`` overrides the connection's account for names
given in full (``accounts/<a>/deployments/<d>``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final

import httpx

from .http import (
    ApiError,
    Connection,
    ConnectionFailed,
    Json,
    ListQuery,
    error_details,
    update_mask,
)

UPLOAD_TIMEOUT: Final = httpx.Timeout(600.0, connect=30.0)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _query(**values: str | bool | None) -> dict[str, str]:
    return {
        key: _flag(value) if isinstance(value, bool) else value
        for key, value in values.items()
        if value is not None
    }


def _patch(conn: Connection, path: str, fields: Json, mask: Sequence[str] | None) -> Json:
    params = {"updateMask": update_mask(mask)} if mask else None
    return conn.request("PATCH", path, params=params, body=fields)


# --- accounts -------------------------------------------------------------------------


def get_account(conn: Connection, account: str | None = None) -> Json:
    return conn.request("GET", conn.account_path(account))


# --- models ---------------------------------------------------------------------------


def _models(conn: Connection, account: str | None) -> str:
    return f"{conn.account_path(account)}/models"


def create_model(conn: Connection, model_id: str, model: Json, account: str | None = None) -> Json:
    return conn.request("POST", _models(conn, account), body={"modelId": model_id, "model": model})


def get_model(conn: Connection, model_id: str, account: str | None = None) -> Json:
    return conn.request("GET", f"{_models(conn, account)}/{model_id}")


def list_models(conn: Connection, query: ListQuery, account: str | None = None) -> Iterator[Json]:
    return conn.paginate(_models(conn, account), "models", query)


def update_model(
    conn: Connection,
    model_id: str,
    fields: Json,
    mask: Sequence[str] | None,
    account: str | None = None,
) -> Json:
    return _patch(conn, f"{_models(conn, account)}/{model_id}", fields, mask)


def delete_model(conn: Connection, model_id: str, account: str | None = None) -> Json:
    return conn.request("DELETE", f"{_models(conn, account)}/{model_id}")


def model_upload_endpoint(
    conn: Connection, model_id: str, sizes: Mapping[str, int], account: str | None = None
) -> Json:
    """``:getUploadEndpoint``: a signed URL per file name (sizes are int64 strings)."""
    body = {"filenameToSize": {name: str(size) for name, size in sizes.items()}}
    return conn.request("POST", f"{_models(conn, account)}/{model_id}:getUploadEndpoint", body=body)


def validate_model_upload(conn: Connection, model_id: str, account: str | None = None) -> Json:
    """``:validateUpload`` (a GET for models): the model becomes READY or FAILED."""
    return conn.request("GET", f"{_models(conn, account)}/{model_id}:validateUpload")


# --- deployments ----------------------------------------------------------------------


def _deployments(conn: Connection, account: str | None) -> str:
    return f"{conn.account_path(account)}/deployments"


def create_deployment(
    conn: Connection,
    deployment: Json,
    deployment_id: str | None = None,
    *,
    validate_only: bool = False,
    account: str | None = None,
) -> Json:
    params = _query(deploymentId=deployment_id, validateOnly=validate_only or None)
    return conn.request("POST", _deployments(conn, account), params=params, body=deployment)


def get_deployment(conn: Connection, deployment_id: str, account: str | None = None) -> Json:
    return conn.request("GET", f"{_deployments(conn, account)}/{deployment_id}")


def list_deployments(
    conn: Connection, query: ListQuery, account: str | None = None
) -> Iterator[Json]:
    return conn.paginate(_deployments(conn, account), "deployments", query)


def update_deployment(
    conn: Connection,
    deployment_id: str,
    fields: Json,
    mask: Sequence[str] | None,
    account: str | None = None,
) -> Json:
    return _patch(conn, f"{_deployments(conn, account)}/{deployment_id}", fields, mask)


def scale_deployment(
    conn: Connection, deployment_id: str, replica_count: int, account: str | None = None
) -> Json:
    return conn.request(
        "PATCH",
        f"{_deployments(conn, account)}/{deployment_id}:scale",
        body={"replicaCount": replica_count},
    )


def delete_deployment(
    conn: Connection,
    deployment_id: str,
    *,
    hard: bool = False,
    ignore_checks: bool = False,
    account: str | None = None,
) -> Json:
    params = _query(hard=hard or None, ignoreChecks=ignore_checks or None)
    return conn.request("DELETE", f"{_deployments(conn, account)}/{deployment_id}", params=params)


# --- deployed models (the SDK's ``lora``) -----------------------------------------------


def _deployed_models(conn: Connection, account: str | None) -> str:
    return f"{conn.account_path(account)}/deployedModels"


def load_lora(
    conn: Connection,
    deployed_model: Json,
    *,
    replace_merged_addon: bool = False,
    account: str | None = None,
) -> Json:
    params = _query(replaceMergedAddon=replace_merged_addon or None)
    return conn.request("POST", _deployed_models(conn, account), params=params, body=deployed_model)


def get_deployed_model(
    conn: Connection, deployed_model_id: str, account: str | None = None
) -> Json:
    return conn.request("GET", f"{_deployed_models(conn, account)}/{deployed_model_id}")


def list_deployed_models(
    conn: Connection, query: ListQuery, account: str | None = None
) -> Iterator[Json]:
    return conn.paginate(_deployed_models(conn, account), "deployedModels", query)


def update_deployed_model(
    conn: Connection,
    deployed_model_id: str,
    fields: Json,
    mask: Sequence[str] | None,
    account: str | None = None,
) -> Json:
    return _patch(conn, f"{_deployed_models(conn, account)}/{deployed_model_id}", fields, mask)


def unload_lora(conn: Connection, deployed_model_id: str, account: str | None = None) -> Json:
    return conn.request("DELETE", f"{_deployed_models(conn, account)}/{deployed_model_id}")


# --- datasets -------------------------------------------------------------------------


def _datasets(conn: Connection, account: str | None) -> str:
    return f"{conn.account_path(account)}/datasets"


def create_dataset(
    conn: Connection, dataset_id: str, dataset: Json, account: str | None = None
) -> Json:
    return conn.request(
        "POST", _datasets(conn, account), body={"datasetId": dataset_id, "dataset": dataset}
    )


def get_dataset(conn: Connection, dataset_id: str, account: str | None = None) -> Json:
    return conn.request("GET", f"{_datasets(conn, account)}/{dataset_id}")


def list_datasets(conn: Connection, query: ListQuery, account: str | None = None) -> Iterator[Json]:
    return conn.paginate(_datasets(conn, account), "datasets", query)


def update_dataset(
    conn: Connection,
    dataset_id: str,
    fields: Json,
    mask: Sequence[str] | None,
    account: str | None = None,
) -> Json:
    return _patch(conn, f"{_datasets(conn, account)}/{dataset_id}", fields, mask)


def delete_dataset(conn: Connection, dataset_id: str, account: str | None = None) -> Json:
    return conn.request("DELETE", f"{_datasets(conn, account)}/{dataset_id}")


def dataset_upload_endpoint(
    conn: Connection, dataset_id: str, sizes: Mapping[str, int], account: str | None = None
) -> Json:
    body = {"filenameToSize": {name: str(size) for name, size in sizes.items()}}
    return conn.request(
        "POST", f"{_datasets(conn, account)}/{dataset_id}:getUploadEndpoint", body=body
    )


def validate_dataset_upload(conn: Connection, dataset_id: str, account: str | None = None) -> Json:
    return conn.request("POST", f"{_datasets(conn, account)}/{dataset_id}:validateUpload", body={})


# --- supervised fine-tuning jobs ------------------------------------------------------


def _sft_jobs(conn: Connection, account: str | None) -> str:
    return f"{conn.account_path(account)}/supervisedFineTuningJobs"


def create_sft_job(
    conn: Connection, job: Json, job_id: str | None = None, account: str | None = None
) -> Json:
    params = _query(supervisedFineTuningJobId=job_id)
    return conn.request("POST", _sft_jobs(conn, account), params=params, body=job)


def get_sft_job(conn: Connection, job_id: str, account: str | None = None) -> Json:
    return conn.request("GET", f"{_sft_jobs(conn, account)}/{job_id}")


def list_sft_jobs(conn: Connection, query: ListQuery, account: str | None = None) -> Iterator[Json]:
    return conn.paginate(_sft_jobs(conn, account), "supervisedFineTuningJobs", query)


def delete_sft_job(conn: Connection, job_id: str, account: str | None = None) -> Json:
    return conn.request("DELETE", f"{_sft_jobs(conn, account)}/{job_id}")


def cancel_sft_job(conn: Connection, job_id: str, account: str | None = None) -> Json:
    return conn.request("POST", f"{_sft_jobs(conn, account)}/{job_id}:cancel", body={})


def resume_sft_job(conn: Connection, job_id: str, account: str | None = None) -> Json:
    return conn.request("POST", f"{_sft_jobs(conn, account)}/{job_id}:resume", body={})


# --- users and API keys ---------------------------------------------------------------


def _users(conn: Connection, account: str | None) -> str:
    return f"{conn.account_path(account)}/users"


def create_user(
    conn: Connection, user: Json, user_id: str | None = None, account: str | None = None
) -> Json:
    return conn.request("POST", _users(conn, account), params=_query(userId=user_id), body=user)


def get_user(conn: Connection, user_id: str, account: str | None = None) -> Json:
    return conn.request("GET", f"{_users(conn, account)}/{user_id}")


def list_users(conn: Connection, query: ListQuery, account: str | None = None) -> Iterator[Json]:
    return conn.paginate(_users(conn, account), "users", query)


def update_user(
    conn: Connection,
    user_id: str,
    fields: Json,
    mask: Sequence[str] | None,
    account: str | None = None,
) -> Json:
    return _patch(conn, f"{_users(conn, account)}/{user_id}", fields, mask)


def delete_user(conn: Connection, user_id: str, account: str | None = None) -> Json:
    return conn.request("DELETE", f"{_users(conn, account)}/{user_id}")


def create_api_key(
    conn: Connection, user_id: str, api_key: Json, account: str | None = None
) -> Json:
    """The answer carries ``key``, the plaintext, this once."""
    return conn.request(
        "POST", f"{_users(conn, account)}/{user_id}/apiKeys", body={"apiKey": api_key}
    )


def list_api_keys(
    conn: Connection, user_id: str, query: ListQuery, account: str | None = None
) -> Iterator[Json]:
    return conn.paginate(f"{_users(conn, account)}/{user_id}/apiKeys", "apiKeys", query)


def delete_api_key(conn: Connection, user_id: str, key_id: str, account: str | None = None) -> Json:
    return conn.request(
        "POST", f"{_users(conn, account)}/{user_id}/apiKeys:delete", body={"keyId": key_id}
    )


# --- downloads ------------------------------------------------------------------------


def download_endpoint(
    conn: Connection, collection: str, item_id: str, account: str | None = None
) -> Json:
    """``:getDownloadEndpoint`` of a model or dataset: a signed URL per file name."""
    base = _models(conn, account) if collection == "models" else _datasets(conn, account)
    return conn.request("GET", f"{base}/{item_id}:getDownloadEndpoint")


def download_file(url: str, path: Path) -> int:
    """GET a signed download URL into ``path``: written beside it and renamed when
    complete, so an interrupted download leaves no partial file under the name. The
    number of bytes. A separate client without the API key, as for uploads."""
    partial = path.with_name(f".{path.name}.partial")
    size = 0
    try:
        with (
            httpx.Client(timeout=UPLOAD_TIMEOUT) as http,
            http.stream("GET", url) as response,
        ):
            if response.is_error:
                response.read()
                code, message = error_details(response)
                raise ApiError(response.status_code, message, code=code, request=f"GET {path.name}")
            with partial.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
                    size += len(chunk)
    except httpx.TransportError as error:
        partial.unlink(missing_ok=True)
        raise ConnectionFailed(
            f"GET {path.name}: cannot reach the download URL: {error}"
        ) from error
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    return size


# --- uploads to signed URLs -----------------------------------------------------------


def upload_file(url: str, path: Path) -> None:
    """PUT a file's bytes to a signed upload URL.

    A separate client without the API key: a signed URL authorizes the upload by itself
    and must not receive credentials (it may point at storage other than the gateway).
    The two headers are the ones Fireworks signs its upload URLs with.
    Raises :class:`~hearth.client.http.ApiError` or ``ConnectionFailed``.
    """
    size = path.stat().st_size
    headers = {
        "Content-Type": "application/octet-stream",
        "X-Goog-Content-Length-Range": f"{size},{size}",
    }
    try:
        with httpx.Client(timeout=UPLOAD_TIMEOUT) as http, path.open("rb") as content:
            response = http.put(url, content=content, headers=headers)
    except httpx.TransportError as error:
        raise ConnectionFailed(f"PUT {path.name}: cannot reach the upload URL: {error}") from error
    if response.is_error:
        code, message = error_details(response)
        raise ApiError(response.status_code, message, code=code, request=f"PUT {path.name}")
