"""Lakes, datasets and graphs on object storage (s3://, and any fsspec URL for reading).

A folder gpuetl writes becomes, at a URL, a *tree*: content-addressed objects (`<prefix>/_objects/<sha256>`)
and one pointer, `<prefix>/_gpuetl_tree.json`, that maps each file of the folder to its object. The pointer is
the commit: it is written last, with a conditional write (S3 `If-None-Match` / `If-Match`), so a reader sees
the old tree or the new one, never half of one, and two writers cannot both replace the same version. One
writer at a time holds `<prefix>/_gpuetl_lock.json` (created only if absent), which needs no shared
filesystem. A command works on a local mirror of the tree (`paths.cache`) with the local guarantees of
`gpuetl.lake.outputs` and publishes it back, uploading only objects the store lacks (`staging`).

Credentials and the endpoint come from where the AWS tools read them (`AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`, `AWS_DEFAULT_REGION`, `~/.aws/config` profiles), so AWS, MinIO
and any S3-compatible store work; the bytes move through pyarrow's filesystem layer.
"""

from gpuetl.remote.staging import RemoteError, check_not_inside, is_url, remote_input, remote_output

__all__ = ["RemoteError", "check_not_inside", "is_url", "remote_input", "remote_output"]
