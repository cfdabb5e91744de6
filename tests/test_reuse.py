"""The work cache a rerun reuses: pieces survive only under the same fingerprint."""
import numpy as np

from swift_study.core.reuse import WorkCache, digest, state_digest


def test_pieces_are_kept_under_one_fingerprint_and_dropped_under_another(tmp_path):
    said = []
    c = WorkCache(tmp_path / "w", {"state": "a", "args": {"k": 1}}, log=said.append)
    assert c.load("x") is None
    c.save("x", v=np.arange(3.0))
    np.testing.assert_array_equal(WorkCache(tmp_path / "w", {"args": {"k": 1}, "state": "a"}).load("x")["v"],
                                  np.arange(3.0))  # key order does not matter
    c2 = WorkCache(tmp_path / "w", {"state": "a", "args": {"k": 2}}, log=said.append)
    assert c2.load("x") is None and any("computing afresh" in s for s in said)


def test_a_damaged_piece_is_recomputed_not_trusted(tmp_path):
    c = WorkCache(tmp_path, {"a": 1})
    c.save("x", v=np.ones(4))
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    assert c.load("x") is None


def test_digests_follow_content(tmp_path):
    assert digest({"a": [1, 2]}) == digest({"a": [1, 2]}) != digest({"a": [2, 1]})
    (tmp_path / "model.safetensors").write_bytes(b"w1")
    plain = state_digest(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"w22")
    assert state_digest(tmp_path) != plain  # no manifest: sizes and times
    (tmp_path / "checksums.sha256").write_text("abc  3  model.safetensors\n")
    first = state_digest(tmp_path)
    (tmp_path / "checksums.sha256").write_text("abd  3  model.safetensors\n")
    assert state_digest(tmp_path) != first  # the manifest names every file's checksum


def test_every_overlay_config_merges_over_the_default_and_validates(repo):
    """config/transfer/*.yaml and config/projection-k128.yaml are overlays that the
    registered commands pass after the default: each (and the two together) must validate."""
    from swift_study.pipeline.config import merge_config, read_config_file, validate_config

    base = read_config_file(repo / "config" / "config.yaml")
    k128 = read_config_file(repo / "config" / "projection-k128.yaml")
    for overlay in sorted((repo / "config" / "transfer").glob("*.yaml")):
        cfg = validate_config(merge_config(merge_config(base, read_config_file(overlay)), k128))
        assert cfg["swift"]["gradients"]["proj_dim"] == 32768 and cfg["suite"] != base.get("suite")
    assert validate_config(merge_config(base, k128))["swift"]["gradients"]["proj_factor_dim"] == 128
    assert validate_config(base)["swift"]["gradients"]["proj_dim"] == 65536
