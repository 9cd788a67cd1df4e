import builtins
import importlib.util
import math

import pytest
from serving import __version__, cli

# The ranking tests need the compiled extension (the serving-runtime wheel).
needs_runtime = pytest.mark.skipif(
    importlib.util.find_spec("serving_runtime") is None,
    reason="serving_runtime (the serving-runtime wheel) is not installed",
)


@needs_runtime
def test_rank_returns_best_first():
    ranked = cli.rank([1.0, 3.0, 2.0], 2)
    assert [i for i, _, _ in ranked] == [1, 2]
    assert [logit for _, logit, _ in ranked] == [3.0, 2.0]
    total = sum(math.exp(x) for x in (1.0, 3.0, 2.0))
    assert ranked[0][2] == pytest.approx(math.exp(3.0) / total, rel=1e-6)


@needs_runtime
def test_rank_ties_keep_lower_index_first():
    assert [i for i, _, _ in cli.rank([0.5, 2.0, 2.0, 2.0], 2)] == [1, 2]


@needs_runtime
def test_rank_command_prints_indices(capsys):
    assert cli.main(["rank", "1.0", "3.0", "2.0", "--k", "2"]) == 0
    assert capsys.readouterr().out == "1\n2\n"


@needs_runtime
def test_rank_command_k_defaults_to_one(capsys):
    assert cli.main(["rank", "4", "-1", "9"]) == 0
    assert capsys.readouterr().out == "2\n"


@needs_runtime
def test_rank_command_scores(capsys):
    assert cli.main(["rank", "0", "0", "--k", "5", "--scores"]) == 0
    assert capsys.readouterr().out == "0\t0\t0.500000\n1\t0\t0.500000\n"


@pytest.mark.parametrize("argv", [["rank"], ["rank", "1", "--k", "0"], ["rank", "x"], []])
def test_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"serving {__version__}\n"


def test_serve_without_aiohttp_exits_1(monkeypatch, capsys):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "aiohttp" or name.startswith("aiohttp."):
            raise ImportError("No module named 'aiohttp'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    assert cli.main(["serve"]) == 1
    assert capsys.readouterr().err.strip() == (
        "the 'serve' command needs the server extra: pip install 'serving[server]'"
    )


@needs_runtime
def test_http_api():
    pytest.importorskip("aiohttp")
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    async def scenario():
        async with TestClient(TestServer(cli.make_app())) as client:
            health = await (await client.get("/healthz")).json()
            assert health["status"] == "ok" and health["version"] == __version__
            resp = await client.post("/v1/rank", json={"logits": [1, 3, 2], "k": 2})
            assert resp.status == 200
            assert [r["index"] for r in (await resp.json())["top_k"]] == [1, 2]
            bad = await client.post("/v1/rank", json={"logits": [1], "k": -1})
            assert bad.status == 400

    asyncio.run(scenario())
