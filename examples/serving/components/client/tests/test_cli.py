import builtins
import importlib.util
import threading

import pytest
from serving_client import __version__, cli

# The server half needs the server extra (serving and the serving-runtime wheel).
needs_server = pytest.mark.skipif(
    importlib.util.find_spec("serving_runtime") is None or importlib.util.find_spec("serving") is None,
    reason="the server extra (serving, serving-runtime) is not installed",
)


@pytest.mark.parametrize("argv", [["rank"], ["rank", "http://x", "1", "--k", "0"], ["serve", "--port", "x"], []])
def test_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"serving-client {__version__}\n"


def test_serve_without_the_extra_names_it(monkeypatch, capsys):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.split(".")[0] in ("serving", "serving_runtime"):
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(__import__("sys").modules, "serving_client.server", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    assert cli.main(["serve", "--check"]) == 1
    assert "pip install 'serving-client[server]'" in capsys.readouterr().err


def test_unreachable_server_is_a_clean_error(capsys):
    assert cli.main(["health", "http://127.0.0.1:9"]) == 1
    assert capsys.readouterr().err.startswith("serving-client: ")


@needs_server
def test_client_against_the_server(capsys):
    from serving_client import server

    with server.make_server("127.0.0.1", 0) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        try:
            assert cli.main(["rank", url, "1.0", "3.0", "2.0", "--k", "2"]) == 0
            assert capsys.readouterr().out == "1\n2\n"
            assert cli.main(["health", url]) == 0
            assert f'"version": "{__version__}"' in capsys.readouterr().out
        finally:
            httpd.shutdown()
