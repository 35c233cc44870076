"""gpuetl on object storage (gpuetl.remote) against a real S3 server (moto's, on a loopback port).

The lake, the dataset and its graphs on s3:// equal the same commands on local folders; a commit is the pointer's
conditional write (a reader sees the old version or the new one; a writer that read an old version fails);
one writer per tree; inputs are never outputs across URLs; a prefix gpuetl did not write is never touched;
a damaged object is refused, not half-read."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pandas as pd
import pytest

from gpuetl.commands import main
from gpuetl.remote.staging import Mirror, mirror_dir, pull, push
from gpuetl.remote.tree import POINTER, Pointer, RemoteError, Store
from tests.support import s3 as s3_fixtures
from tests.support.lakes import SMALL

s3_endpoint, s3_bucket = s3_fixtures.s3_endpoint, s3_fixtures.s3_bucket  # the S3 server and a bucket per test

SMALL_BUILD = [a for v in SMALL for a in ("--config-set", v)]
SMALL_GRAPH = [a for v in ("features.pagerank=false", "window=20") for a in ("--config-set", v)]
DATASETS = "calendar,master,bars_daily,topix,fins_summary"


def settings(tmp: Path) -> list[str]:
    return ["--backend", "cpu", "--set", f"paths.data={tmp}/data", "--set", f"paths.cache={tmp}/cache",
            "--set", f"paths.datasets={tmp}/data/datasets", "--set", "demo.codes=10",
            "--set", "demo.start=2023-06-01", "--set", "demo.end=2024-02-29", "--no-progress"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def keys(bucket: str, prefix: str = "") -> dict[str, str]:
    """Every object of the bucket under `prefix`: key -> ETag."""
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}


def pointer(bucket: str, prefix: str) -> dict:
    return json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=f"{prefix}/{POINTER}")["Body"].read())


def tables(path: str, cache: Path) -> dict[str, object]:
    """The Parquet files of each folder of a dataset (open_dataset's: a URL is mirrored first) as one Arrow table
    (graph parts have random names)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gpuetl.tensors import open_dataset

    root = open_dataset(path, "cpu", cache=cache).path
    folders: dict[str, list[Path]] = {}
    for f in sorted(root.rglob("*.parquet")):
        folders.setdefault(str(f.parent.relative_to(root)), []).append(f)
    return {k: pa.concat_tables([pq.read_table(f) for f in v]) for k, v in folders.items()}


def test_lake_dataset_and_graphs_on_s3_equal_the_local_run(tmp_path: Path, s3_bucket: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    s, url = settings(tmp_path), f"s3://{s3_bucket}"
    local = tmp_path / "local"
    for out in (f"{url}/lake", str(local / "lake")):
        code, _, err = run(capsys, "synth", *s, "--datasets", DATASETS, "--out", out)
        assert code == 0, err
        assert (f"{url}/lake: published version" in err) == out.startswith("s3://")
    tree = pointer(s3_bucket, "lake")
    assert tree["kind"] == "lake" and len(tree["files"]) > 100
    lake_files = sorted(str(p.relative_to(local / "lake")) for p in (local / "lake").rglob("*")
                        if p.is_file() and p.name != ".lock")  # the lake's own lock file stays local
    assert sorted(tree["files"]) == lake_files  # the whole folder, file by file

    code, _, err = run(capsys, "build", *s, *SMALL_BUILD, "--lake", f"{url}/lake", "--out", f"{url}/ds")
    assert code == 0, err
    assert f"{url}/ds: published version" in err and "0 downloaded" in err  # the writer's mirror is the cache
    code, _, err = run(capsys, "build", *s, *SMALL_BUILD, "--lake", str(local / "lake"), "--out", str(local / "ds"))
    assert code == 0, err
    for where in (f"{url}/ds", str(local / "ds")):
        code, _, err = run(capsys, "graph", *s, *SMALL_GRAPH, "--dataset", where,
                           "--lake", f"{url}/lake" if where.startswith("s3") else str(local / "lake"))
        assert code == 0, err
    assert any(k.startswith("graphs/") for k in pointer(s3_bucket, "ds")["files"])

    remote, mine = tables(f"{url}/ds", tmp_path / "cache"), tables(str(local / "ds"), tmp_path / "cache")
    assert remote.keys() == mine.keys() and any(k.startswith("graphs/") for k in mine)
    for k in mine:
        pd.testing.assert_frame_equal(remote[k].to_pandas(), mine[k].to_pandas(), check_exact=True, obj=k)

    # a second run pulls nothing new and uploads nothing new: only what changed moves
    code, _, err = run(capsys, "graph", *s, *SMALL_GRAPH, "--dataset", f"{url}/ds", "--lake", f"{url}/lake",
                       "--overwrite")
    assert code == 0, err
    assert "0 downloaded" in err


def test_an_existing_dataset_is_replaced_only_with_overwrite(tmp_path: Path, s3_bucket: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    s, url = settings(tmp_path), f"s3://{s3_bucket}"
    assert run(capsys, "synth", *s, "--datasets", DATASETS, "--out", f"{url}/lake")[0] == 0
    assert run(capsys, "build", *s, *SMALL_BUILD, "--lake", f"{url}/lake", "--out", f"{url}/ds")[0] == 0
    before = keys(s3_bucket, "ds/")
    code, _out, err = run(capsys, "build", *s, *SMALL_BUILD, "--lake", f"{url}/lake", "--out", f"{url}/ds")
    assert code == 2 and "holds a gpuetl dataset already: pass --overwrite" in err
    assert keys(s3_bucket, "ds/") == before  # refused: nothing written, the lock released
    code, _, err = run(capsys, "build", *s, *SMALL_BUILD, "--config-set", "start=2023-12-01", "--overwrite",
                         "--lake", f"{url}/lake", "--out", f"{url}/ds")
    assert code == 0, err
    assert keys(s3_bucket, "ds/")[f"ds/{POINTER}"] != before[f"ds/{POINTER}"]  # a new version


def test_inputs_are_never_outputs_across_urls(tmp_path: Path, s3_bucket: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    s, url = settings(tmp_path), f"s3://{s3_bucket}"
    assert run(capsys, "synth", *s, "--datasets", DATASETS, "--out", f"{url}/lake")[0] == 0
    before = keys(s3_bucket)
    for out in (f"{url}/lake", f"{url}/lake/ds", url):
        code, _, err = run(capsys, "build", *s, "--lake", f"{url}/lake", "--out", out)
        assert code == 1 and "inputs are never outputs" in err, (out, err)
    assert keys(s3_bucket) == before


def test_a_prefix_gpuetl_did_not_write_is_never_touched(tmp_path: Path, s3_bucket: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    client = boto3.client("s3")
    client.put_object(Bucket=s3_bucket, Key="mine/notes.txt", Body=b"keep me")
    code, _, err = run(capsys, "synth", *settings(tmp_path), "--datasets", DATASETS, "--out", f"s3://{s3_bucket}/mine")
    assert code == 1 and "objects that gpuetl did not write" in err
    assert keys(s3_bucket) == {"mine/notes.txt": keys(s3_bucket)["mine/notes.txt"]}
    assert client.get_object(Bucket=s3_bucket, Key="mine/notes.txt")["Body"].read() == b"keep me"


def test_one_writer_per_tree(tmp_path: Path, s3_bucket: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"s3://{s3_bucket}/lake"
    store = Store(url)
    with store.lock("test"):
        code, _, err = run(capsys, "synth", *settings(tmp_path), "--datasets", DATASETS, "--out", url)
        assert code == 1 and "is being written by another gpuetl process" in err and '"command": "test"' in err
        with pytest.raises(RemoteError, match="being written"), Store(url).lock("again"):
            pass
    assert keys(s3_bucket) == {}  # released, and nothing published by the refused writer
    with store.lock("after"):
        pass


def _tree(tmp_path: Path, url: str, files: dict[str, bytes]) -> tuple[Store, Mirror]:
    m = Mirror(mirror_dir(tmp_path / "writer", url))
    m.tree.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        (m.tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (m.tree / rel).write_bytes(data)
    return Store(url), m


def test_a_commit_is_conditional_on_the_version_read(tmp_path: Path, s3_bucket: str) -> None:
    store, m = _tree(tmp_path, f"s3://{s3_bucket}/t", {"a.txt": b"one"})
    first = push(store, m, "dataset", None, progress=lambda _: None)
    read_by_two = store.read_pointer()
    assert read_by_two is not None and read_by_two.version == first.version
    (m.tree / "a.txt").write_bytes(b"two")
    push(store, m, "dataset", read_by_two, progress=lambda _: None)  # writer 1 commits
    (m.tree / "a.txt").write_bytes(b"three")
    with pytest.raises(RemoteError, match="changed while this command ran"):
        push(store, m, "dataset", read_by_two, progress=lambda _: None)  # writer 2 read the same old version
    with pytest.raises(RemoteError, match="changed while"):
        push(store, m, "dataset", None, progress=lambda _: None)  # "first version" when one exists
    reader = Mirror(mirror_dir(tmp_path / "reader", store.url))
    pull(store, store.read_pointer(), reader, progress=lambda _: None)
    assert (reader.tree / "a.txt").read_bytes() == b"two"


def test_a_writer_that_dies_mid_upload_leaves_the_old_version(tmp_path: Path, s3_bucket: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    files = {f"part/{i}.bin": bytes([i]) * (1000 + i) for i in range(20)}
    store, m = _tree(tmp_path, f"s3://{s3_bucket}/t", files)
    first = push(store, m, "lake", None, progress=lambda _: None)
    for rel in files:
        (m.tree / rel).write_bytes(b"new " + files[rel])
    calls = {"n": 0}
    real = Store.upload

    def dying(self: Store, src: str, sha: str) -> None:
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError("killed")
        real(self, src, sha)

    monkeypatch.setattr(Store, "upload", dying)
    with pytest.raises(OSError, match="killed"):
        push(store, m, "lake", store.read_pointer(), progress=lambda _: None)
    monkeypatch.setattr(Store, "upload", real)
    now = store.read_pointer()
    assert now is not None and now.version == first.version  # readers still see the old version, whole
    reader = Mirror(mirror_dir(tmp_path / "reader", store.url))
    pull(store, now, reader, progress=lambda _: None)
    assert {str(p.relative_to(reader.tree)): p.read_bytes() for p in reader.tree.rglob("*") if p.is_file()} == files
    second = push(store, m, "lake", now, progress=lambda _: None)  # the next writer publishes and collects
    third = push(store, m, "lake", second, progress=lambda _: None)
    assert store.objects() == {e.sha256 for e in third.files.values()}  # the dead writer's objects are gone


def test_a_damaged_object_is_refused_and_the_mirror_keeps_its_files(tmp_path: Path, s3_bucket: str) -> None:
    store, m = _tree(tmp_path, f"s3://{s3_bucket}/t", {"a.txt": b"good", "b.txt": b"also good"})
    published = push(store, m, "dataset", None, progress=lambda _: None)
    reader = Mirror(mirror_dir(tmp_path / "reader", store.url))
    pull(store, published, reader, progress=lambda _: None)
    bad = published.files["a.txt"].sha256
    (m.tree / "a.txt").write_bytes(b"good, then changed")
    second = push(store, m, "dataset", store.read_pointer(), progress=lambda _: None)
    boto3.client("s3").put_object(Bucket=s3_bucket, Key=f"t/_objects/{second.files['a.txt'].sha256}",
                                  Body=b"tampered")
    with pytest.raises(RemoteError, match="does not match its pointer"):
        pull(store, store.read_pointer(), reader, progress=lambda _: None)
    assert (reader.tree / "a.txt").read_bytes() == b"good" and bad  # the old file stays whole


def test_a_store_without_conditional_writes_is_read_not_written(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    mem = fsspec.filesystem("memory")
    store, m = _tree(tmp_path, "memory://gpuetl-test/t", {"x/a.txt": b"abc"})
    import hashlib

    sha = hashlib.sha256(b"abc").hexdigest()
    mem.pipe(f"/gpuetl-test/t/_objects/{sha}", b"abc")
    from gpuetl.remote.tree import FileEntry

    mem.pipe(f"/gpuetl-test/t/{POINTER}", Pointer("dataset", "v1", {"x/a.txt": FileEntry(sha, 3)}).to_json())
    reader = Mirror(mirror_dir(tmp_path / "reader", store.url))
    pull(store, store.read_pointer(), reader, progress=lambda _: None)
    assert (reader.tree / "x" / "a.txt").read_bytes() == b"abc"
    with pytest.raises(RemoteError, match="conditional writes"):
        push(store, m, "dataset", store.read_pointer(), progress=lambda _: None)


def test_a_missing_bucket_or_tree_says_what_to_do(tmp_path: Path, s3_bucket: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    s = settings(tmp_path)
    code, out, err = run(capsys, "build", *s, "--lake", f"s3://{s3_bucket}/nothing", "--out", str(tmp_path / "d"))
    assert code == 1 and out == "" and "holds no gpuetl tree" in err and err.count("\n") == 1
    code, out, err = run(capsys, "build", *s, "--lake", "s3://no-such-bucket-gpuetl/lake", "--out", str(tmp_path / "d"))
    assert code == 1 and err.startswith("gpuetl build: ") and not (tmp_path / "d").exists()


def test_paths_lake_and_datasets_may_be_urls_and_local_only_commands_refuse_them(
        tmp_path: Path, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"s3://{s3_bucket}"
    s = [*settings(tmp_path), "--set", f"paths.lake={url}/lake", "--set", f"paths.datasets={url}/datasets"]
    code, _, err = run(capsys, "synth", *s, "--datasets", DATASETS, "--out", f"{url}/lake")
    assert code == 0, err
    code, _, err = run(capsys, "build", *s, *SMALL_BUILD)  # paths.lake in, <paths.datasets>/<config name> out
    assert code == 0, err
    assert f"{url}/datasets/default: published version" in err
    code, _, err = run(capsys, "graph", *s, *SMALL_GRAPH, "--dataset", "default")  # a name under paths.datasets
    assert code == 0, err
    assert pointer(s3_bucket, "datasets/default")["kind"] == "dataset"
    assert any(k.startswith("graphs/") for k in pointer(s3_bucket, "datasets/default")["files"])
    # a command that works on local folders says so, and makes no folder named "s3:"
    code, out, err = run(capsys, "lake", "verify", *s)
    assert code == 2 and out == "" and f"paths.lake is a URL ({url}/lake)" in err and "local folders" in err
    code, out, err = run(capsys, "build", *settings(tmp_path), "--set", f"paths.data={url}/data")
    assert code == 2 and out == "" and f"paths.data: {url}/data is a URL" in err
    assert not list(tmp_path.glob("s3*"))


def test_a_worker_mirrors_each_version_once_and_only_the_folders_it_reads(tmp_path: Path, s3_bucket: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from gpuetl.remote import workers
    from gpuetl.remote.tree import Tree

    monkeypatch.setattr(workers, "worker_root", lambda: tmp_path / "worker")
    monkeypatch.setattr(workers, "_READY", {})
    store, m = _tree(tmp_path, f"s3://{s3_bucket}/lake", {"_manifest.json": b"{}", "bars/1.parquet": b"bars one",
                                                          "bars/2.parquet": b"bars two", "master/1.parquet": b"m"})
    v1 = push(store, m, "lake", None, progress=lambda _: None)
    shared = workers.Shared.of({str(m.tree): Tree(store.url, v1)}, {})
    one = shared.path(m.tree, ("bars",))
    assert one != m.tree and sorted(str(p.relative_to(one)) for p in one.rglob("*") if p.is_file()) == [
        "_manifest.json", "bars/1.parquet", "bars/2.parquet"]  # not master: the task does not read it
    assert shared.path(tmp_path / "elsewhere") == tmp_path / "elsewhere"  # not a mirror: a shared folder
    (m.tree / "bars" / "2.parquet").write_bytes(b"bars two, corrected")
    v2 = push(store, m, "lake", v1, progress=lambda _: None)
    two = workers.Shared.of({str(m.tree): Tree(store.url, v2)}, {}).path(m.tree, ("bars",))
    assert two != one and (two / "bars" / "2.parquet").read_bytes() == b"bars two, corrected"
    assert (one / "bars" / "2.parquet").read_bytes() == b"bars two"  # a task still on v1 reads v1 as it was
    assert (two / "bars" / "1.parquet").stat().st_ino == (one / "bars" / "1.parquet").stat().st_ino  # linked


def test_files_between_tasks_go_through_the_store_checked(tmp_path: Path, s3_bucket: str) -> None:
    from gpuetl.lake.outputs import partial_dir
    from gpuetl.remote import workers

    url = f"s3://{s3_bucket}/ds"
    out = tmp_path / "mirror" / "tree"
    shared = workers.Shared.of({}, {str(out): url})
    assert shared.exchange(out) == url and shared.exchange(partial_dir(out)) == url
    assert shared.exchange(tmp_path / "other") is None  # a local output: tasks write it themselves
    (tmp_path / "a" / "year=2024").mkdir(parents=True)
    (tmp_path / "a" / "year=2024" / "part-0.parquet").write_bytes(b"spilled rows")
    made = workers.put(url, tmp_path / "a", ["year=2024/part-0.parquet"])
    workers.get(url, made, tmp_path / "b")
    assert (tmp_path / "b" / "year=2024" / "part-0.parquet").read_bytes() == b"spilled rows"
    sha = made["year=2024/part-0.parquet"].sha256
    boto3.client("s3").put_object(Bucket=s3_bucket, Key=f"ds/_objects/{sha}", Body=b"spilled rowz")
    with pytest.raises(RemoteError, match="does not match its sha256"):
        workers.get(url, made, tmp_path / "c")
    assert not (tmp_path / "c" / "year=2024" / "part-0.parquet").exists()


def test_a_training_run_and_its_ranking_read_and_write_s3(tmp_path: Path, s3_bucket: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.train import TINY_XGB, write_tiny_dataset

    store, m = _tree(tmp_path, f"s3://{s3_bucket}/ds", {})
    write_tiny_dataset(m.tree)
    push(store, m, "dataset", None, progress=lambda _: None)
    s = [*settings(tmp_path), *(a for v in TINY_XGB for a in ("--config-set", v))]
    code, _, err = run(capsys, "baseline", *s, "--dataset", f"{store.url}", "--out", f"s3://{s3_bucket}/runs/xgb")
    assert code == 0, err
    code, _, err = run(capsys, "baseline", *s, "--dataset", str(m.tree), "--out", str(tmp_path / "local-run"))
    assert code == 0, err
    tree = pointer(s3_bucket, "runs/xgb")
    local = {str(p.relative_to(tmp_path / "local-run")) for p in (tmp_path / "local-run").rglob("*") if p.is_file()}
    named = {f for f in local if not f.startswith("tensorboard/")} - {".lock"}  # event files carry a timestamp
    assert tree["kind"] == "xgb-run" and named < set(tree["files"])  # the whole run folder
    assert len(tree["files"]) - len(named) == len(local - named - {".lock"}) > 0  # and its TensorBoard events
    mirror = Mirror(mirror_dir(tmp_path / "check", f"s3://{s3_bucket}/runs/xgb"))
    pull(Store(f"s3://{s3_bucket}/runs/xgb"), Store(f"s3://{s3_bucket}/runs/xgb").read_pointer(), mirror,
         progress=lambda _: None)
    preds = sorted(p.relative_to(mirror.tree) for p in mirror.tree.rglob("predictions*.parquet"))
    assert preds, sorted(tree["files"])
    for rel in preds:  # the same model's scores, whether the run's folders are local or on s3
        pd.testing.assert_frame_equal(pd.read_parquet(mirror.tree / rel), pd.read_parquet(tmp_path / "local-run" / rel))
    code, _, err = run(capsys, "baseline", *s, "--dataset", f"{store.url}", "--out", f"s3://{s3_bucket}/runs/xgb")
    assert code == 2 and "--overwrite" in err  # an existing run is replaced only when asked, on s3 too

    # the run's model ranks the dataset's latest day: run, dataset and ranking all on s3, as on folders
    p = [*settings(tmp_path), "--json"]
    code, _, err = run(capsys, "predict", *p, "--run", f"s3://{s3_bucket}/runs/xgb", "--dataset", store.url,
                       "--out", f"s3://{s3_bucket}/predictions")
    assert code == 0, err
    code, _, err = run(capsys, "predict", *p, "--run", str(tmp_path / "local-run"), "--dataset", str(m.tree),
                       "--out", str(tmp_path / "local-predictions"))
    assert code == 0, err
    assert pointer(s3_bucket, "predictions")["kind"] == "predictions"
    ranked = Mirror(mirror_dir(tmp_path / "check", f"s3://{s3_bucket}/predictions"))
    pull(Store(f"s3://{s3_bucket}/predictions"), Store(f"s3://{s3_bucket}/predictions").read_pointer(), ranked,
         progress=lambda _: None)
    [mine] = sorted((tmp_path / "local-predictions").glob("predictions-*.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(ranked.tree / mine.name), pd.read_parquet(mine))


def test_fetch_writes_a_lake_on_s3_unit_for_unit_as_in_a_folder_and_resumes(tmp_path: Path, s3_bucket: str,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    s = [*settings(tmp_path), "--datasets", "calendar,bars_daily", "--start", "2023-07-03", "--end", "2023-08-31"]
    url, local = f"s3://{s3_bucket}/lake", tmp_path / "local-lake"
    for lake in (url, str(local)):
        code, _, err = run(capsys, "fetch", "--demo", *s, "--lake", lake)
        assert code == 0, err
    mirror = Mirror(mirror_dir(tmp_path / "check", url))
    pull(Store(url), Store(url).read_pointer(), mirror, progress=lambda _: None)
    units = sorted(str(p.relative_to(local)) for p in local.rglob("*.parquet"))
    assert len(units) > 40 and units == sorted(str(p.relative_to(mirror.tree)) for p in mirror.tree.rglob("*.parquet"))
    for rel in units:  # the same units, byte for byte: the fake market is deterministic
        assert (mirror.tree / rel).read_bytes() == (local / rel).read_bytes(), rel
    code, _, err = run(capsys, "fetch", "--demo", *s, "--lake", url)  # a rerun: every unit held, nothing new
    assert code == 0, err
    assert "0 uploaded" in err
