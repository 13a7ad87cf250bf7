"""No symlink inside the cache dir is followed; a read-only tier changes nothing.

Real files and real symlinks throughout (the suite runs as root on Linux, so
permissions would not stop a write: only the code does).
"""

import asyncio
import errno
import os
import stat
from datetime import datetime, timezone

import pytest

from ircache_tui.cache.errors import ReadOnlyError
from ircache_tui.cache.fs_tier import FilesystemTier, NotARegularFile, UnsafeQuarantineDir
from ircache_tui.cache.keys import cache_key, spec_hash
from ircache_tui.ir import ApplicationIR, CorruptEntry, StoredEntry, decode_entry

SPEC = "# Shop\n\nA shop that sells things.\n"
KEY = cache_key(SPEC, "shop.md")


def entry_bytes(name: str = "Shop") -> bytes:
    """A valid stored entry for KEY: what an attacker would plant to be served."""
    entry = StoredEntry.create(
        ApplicationIR(name=name), spec_name="shop", spec_hash=spec_hash(SPEC), spec_path="shop.md", generator="offline",
        generated_at=datetime(2024, 1, 1, tzinfo=timezone.utc),
    )
    return entry.to_json_bytes()


@pytest.fixture
def fs(cache_dir):
    cache_dir.mkdir(parents=True)
    return FilesystemTier(cache_dir)


@pytest.fixture
def outside(tmp_path):
    """A valid-looking entry file outside the cache dir."""
    d = tmp_path / "outside"
    d.mkdir()
    f = d / "evil.json"
    f.write_bytes(entry_bytes("Evil"))
    decode_entry(f.read_bytes(), KEY.rsplit("_", 1)[1])  # it would pass as the entry if read through the link
    return f


def snapshot(directory):
    """Every name under `directory` with its type, size, mtime and link target, not following links."""
    st = os.lstat(directory)
    result = {".": (stat.S_IFMT(st.st_mode), st.st_mtime_ns)}
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            result[os.path.relpath(p, directory)] = (
                stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns, os.readlink(p) if stat.S_ISLNK(st.st_mode) else None,
            )
    return result


async def test_a_symlinked_entry_reads_as_corrupt_never_as_the_outside_file(fs, cache_dir, outside):
    link = cache_dir / f"{KEY}.json"
    link.symlink_to(outside)
    with pytest.raises(NotARegularFile) as caught:
        await fs.read_raw(KEY)
    exc = caught.value
    # both: a CorruptEntry (to be quarantined) and an OSError (older callers: unreadable, a miss)
    assert isinstance(exc, CorruptEntry) and isinstance(exc, OSError)
    assert exc.errno == errno.ELOOP and exc.reason == "a symlink, not a regular file" and exc.filename == str(link)
    assert "a symlink, not a regular file" in str(exc)
    # a dangling link and a link to a link read the same way
    link.unlink()
    link.symlink_to(cache_dir / "nowhere.json")
    with pytest.raises(NotARegularFile, match="a symlink"):
        await fs.read_raw(KEY)


async def test_quarantine_moves_the_link_itself_not_its_target(fs, cache_dir, outside):
    before = outside.read_bytes(), os.lstat(outside).st_mtime_ns
    link = cache_dir / f"{KEY}.json"
    link.symlink_to(outside)
    with pytest.raises(CorruptEntry) as caught:
        await fs.read_raw(KEY)
    target = await fs.quarantine(KEY, caught.value.reason)
    assert target.parent == cache_dir / ".quarantine"
    assert target.is_symlink() and os.readlink(target) == str(outside)  # still a link, moved as one
    assert not os.path.lexists(link)
    assert (outside.read_bytes(), os.lstat(outside).st_mtime_ns) == before  # the target never moved
    assert os.listdir(outside.parent) == ["evil.json"]
    assert stat.S_IMODE(os.lstat(cache_dir / ".quarantine").st_mode) == 0o700
    # a quarantined link is no more an entry than a live one
    assert await fs.list_entries(include_quarantined=True) == []


async def test_quarantine_of_a_dangling_link_moves_it(fs, cache_dir):
    link = cache_dir / f"{KEY}.json"
    link.symlink_to(cache_dir / "gone.json")
    target = await fs.quarantine(KEY, "a symlink")
    assert target is not None and target.is_symlink() and not os.path.lexists(link)


async def test_a_symlinked_quarantine_dir_is_refused_and_nothing_moves(fs, cache_dir, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (cache_dir / ".quarantine").symlink_to(elsewhere, target_is_directory=True)
    await fs.write_raw(KEY, b"garbage")
    with pytest.raises(UnsafeQuarantineDir) as caught:
        await fs.quarantine(KEY, "not JSON")
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ELOOP
    assert "quarantine dir is a symlink, not a directory" in str(caught.value)
    assert os.listdir(elsewhere) == []
    assert (cache_dir / f"{KEY}.json").read_bytes() == b"garbage"  # the entry stays
    # listing quarantined entries does not look through it either
    (elsewhere / f"{KEY}.20240101T000000.json").write_bytes(entry_bytes())
    assert [e.quarantined for e in await fs.list_entries(include_quarantined=True)] == [False]


async def test_a_quarantine_path_that_is_a_file_is_refused(fs, cache_dir):
    (cache_dir / ".quarantine").write_bytes(b"not a dir")
    await fs.write_raw(KEY, b"garbage")
    with pytest.raises(UnsafeQuarantineDir, match="quarantine dir is a regular file") as caught:
        await fs.quarantine(KEY, "not JSON")
    assert caught.value.errno == errno.ENOTDIR
    assert (cache_dir / f"{KEY}.json").read_bytes() == b"garbage"
    assert (cache_dir / ".quarantine").read_bytes() == b"not a dir"


async def test_writing_over_a_planted_symlink_replaces_the_link(fs, cache_dir, outside):
    before = outside.read_bytes(), os.lstat(outside).st_mtime_ns
    link = cache_dir / f"{KEY}.json"
    link.symlink_to(outside)
    await fs.write_raw(KEY, entry_bytes("Mine"))
    assert not link.is_symlink() and stat.S_ISREG(os.lstat(link).st_mode)
    assert decode_entry(link.read_bytes()).application_ir.name == "Mine"
    assert (outside.read_bytes(), os.lstat(outside).st_mtime_ns) == before
    assert await fs.read_raw(KEY) == entry_bytes("Mine")
    assert sorted(os.listdir(cache_dir)) == [f"{KEY}.json"]  # no temp file left behind


async def test_a_symlink_at_a_temp_file_name_is_never_written_through(fs, cache_dir, outside, monkeypatch):
    """mkstemp creates with O_EXCL: an existing name, a symlink included, is refused, never opened.

    The temp name is random, so mkstemp's name source is pinned to make it try
    the planted name first (the files, links and syscalls are all real).
    """
    import tempfile

    before = outside.read_bytes()
    names = iter(["planted", "fresh"])

    class Names:  # what mkstemp draws its random part from: first the planted name, then a free one
        def __iter__(self):
            return self

        def __next__(self):
            return next(names)

    planted = cache_dir / f".{KEY}.{os.getpid()}.planted.tmp"
    planted.symlink_to(outside)
    monkeypatch.setattr(tempfile, "_get_candidate_names", lambda: Names())
    await fs.write_raw(KEY, entry_bytes("Mine"))
    assert next(names, None) is None  # the planted name was tried, refused, and the next one used
    assert outside.read_bytes() == before
    assert planted.is_symlink() and os.readlink(planted) == str(outside)
    assert decode_entry((cache_dir / f"{KEY}.json").read_bytes()).application_ir.name == "Mine"


async def test_exists_listing_and_delete_do_not_follow_links(fs, cache_dir, outside):
    other = cache_dir.parent / "shop_ffffffff.json"
    other.write_bytes(b"{}")
    (cache_dir / f"{KEY}.json").symlink_to(outside)
    (cache_dir / "shop_ffffffff.json").symlink_to(other)  # a link to a regular file, inside the tree
    await fs.write_raw("real_0a1b2c3d", b"{}")
    assert await fs.exists(KEY) is False
    assert await fs.exists("shop_ffffffff") is False
    assert await fs.exists("real_0a1b2c3d") is True
    assert [e.cache_key for e in await fs.list_entries(include_quarantined=True)] == ["real_0a1b2c3d"]
    assert (await fs.stats())["file_count"] == 1
    assert await fs.delete(KEY) is True
    assert not os.path.lexists(cache_dir / f"{KEY}.json") and outside.exists()
    # a stale-looking temp-file link is not swept through either
    tmp_link = cache_dir / f".{KEY}.abc.tmp"
    tmp_link.symlink_to(outside)
    os.utime(tmp_link, (0, 0), follow_symlinks=False)
    assert await fs.cleanup_temp_files() == 0
    assert tmp_link.is_symlink() and outside.exists()


async def test_a_fifo_or_directory_is_a_not_a_regular_file_corrupt_entry(fs, cache_dir):
    os.mkfifo(cache_dir / "fifo_0a1b2c3d.json")
    (cache_dir / "dir_0a1b2c3d.json").mkdir()
    for key, kind in (("fifo_0a1b2c3d", "a FIFO"), ("dir_0a1b2c3d", "a directory")):
        with pytest.raises(NotARegularFile) as caught:
            await asyncio.wait_for(fs.read_raw(key), timeout=5)
        assert caught.value.errno == errno.EINVAL and caught.value.reason == f"{kind}, not a regular file"
        assert await fs.exists(key) is False
        target = await fs.quarantine(key, caught.value.reason)
        assert target.parent == cache_dir / ".quarantine"
    assert stat.S_ISFIFO(os.lstat(next((cache_dir / ".quarantine").glob("fifo_*"))).st_mode)


async def test_a_symlinked_cache_dir_is_allowed(tmp_path, outside):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    fs = FilesystemTier(tmp_path / "link")
    await fs.write_raw(KEY, entry_bytes())
    assert (real / f"{KEY}.json").read_bytes() == entry_bytes()
    assert await fs.read_raw(KEY) == entry_bytes()
    assert await fs.exists(KEY) is True
    assert [e.cache_key for e in await fs.list_entries()] == [KEY]
    target = await fs.quarantine(KEY, "test")
    assert (real / ".quarantine" / target.name).read_bytes() == entry_bytes()
    assert [e.quarantined for e in await fs.list_entries(include_quarantined=True)] == [True]
    # but a link inside it is still not followed
    (real / f"{KEY}.json").symlink_to(outside)
    with pytest.raises(NotARegularFile):
        await fs.read_raw(KEY)


# -- read-only ---------------------------------------------------------------


async def test_read_only_tier_refuses_every_write_and_changes_nothing(cache_dir, tmp_path):
    writer = FilesystemTier(cache_dir)
    await writer.write_raw(KEY, entry_bytes())
    await writer.write_raw("bad_0a1b2c3d", b"garbage")
    await writer.quarantine("bad_0a1b2c3d", "not JSON")
    await writer.write_raw("bad_0a1b2c3d", b"garbage again")
    old_tmp = cache_dir / f".{KEY}.abc123.tmp"
    old_tmp.write_bytes(b"half")
    os.utime(old_tmp, (0, 0))
    before = snapshot(cache_dir)

    ro = FilesystemTier(cache_dir, read_only=True)
    attempts = [
        ("writing", f"{KEY}.json", lambda: ro.write_raw(KEY, entry_bytes("New"))),
        ("writing", "new_0a1b2c3d.json", lambda: ro.write_raw("new_0a1b2c3d", b"{}")),
        ("deleting", f"{KEY}.json", lambda: ro.delete(KEY)),
        ("deleting", "gone_0a1b2c3d.json", lambda: ro.delete("gone_0a1b2c3d")),
        ("quarantining", "bad_0a1b2c3d.json", lambda: ro.quarantine("bad_0a1b2c3d", "not JSON")),
        ("clearing", "all entries", lambda: ro.clear()),
        ("clearing", "shop entries", lambda: ro.clear("shop")),
        ("removing leftover temp files", "", lambda: ro.cleanup_temp_files(0)),
    ]
    for what, names, attempt in attempts:
        with pytest.raises(ReadOnlyError) as caught:
            await attempt()
        message = str(caught.value)
        assert message.startswith(f"read-only cache: not {what} ") and "\n" not in message
        assert str(cache_dir) in message and names in message
    assert snapshot(cache_dir) == before

    # reads, listing, stats and exists still work
    assert await ro.read_raw(KEY) == entry_bytes()
    assert await ro.exists(KEY) is True
    listed = await ro.list_entries(include_quarantined=True)
    assert sorted((e.cache_key, e.quarantined) for e in listed) == [("bad_0a1b2c3d", False), ("bad_0a1b2c3d", True), (KEY, False)]
    assert (await ro.stats())["file_count"] == 2
    assert snapshot(cache_dir) == before


async def test_read_only_tier_creates_no_directory(tmp_path):
    missing = tmp_path / "not" / "there"
    ro = FilesystemTier(missing, read_only=True)
    with pytest.raises(ReadOnlyError, match=r"read-only cache: not writing .*shop_0a1b2c3d\.json"):
        await ro.write_raw("shop_0a1b2c3d", b"{}")
    with pytest.raises(ReadOnlyError, match="not quarantining"):
        await ro.quarantine("shop_0a1b2c3d", "x")
    assert await ro.read_raw("shop_0a1b2c3d") is None
    assert await ro.list_entries(include_quarantined=True) == []
    assert (await ro.stats())["file_count"] == 0
    assert not (tmp_path / "not").exists()
