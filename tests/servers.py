"""Real servers for tests, started on free loopback ports and stopped afterwards."""

from __future__ import annotations

import shutil
import socket
import subprocess
import textwrap
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class Nginx:
    """nginx with WebDAV PUT: an HTTP cache in the layout bazel-remote serves (/ac/<key>, /cas/<sha256>)."""

    def __init__(self, workdir: Path, directives: str = "") -> None:
        """`directives`: more of nginx's settings for the served location (e.g. `max_ranges 0;`)."""
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        assert Path(binary).exists(), "nginx is not installed: apt-get install nginx-light (or nox -s tests)"
        self.workdir = workdir
        self.data = workdir / "data"
        self.data.mkdir(parents=True)
        self.port = free_port()
        conf = workdir / "nginx.conf"
        conf.write_text(textwrap.dedent(f"""
            daemon off;
            user root;
            worker_processes 1;
            pid {workdir}/nginx.pid;
            error_log {workdir}/error.log;
            events {{ worker_connections 64; }}
            http {{
                access_log {workdir}/access.log;
                client_body_temp_path {workdir}/body;
                proxy_temp_path {workdir}/proxy;
                fastcgi_temp_path {workdir}/fastcgi;
                uwsgi_temp_path {workdir}/uwsgi;
                scgi_temp_path {workdir}/scgi;
                server {{
                    listen 127.0.0.1:{self.port};
                    client_max_body_size 0;
                    location / {{
                        root {self.data};
                        dav_methods PUT DELETE;
                        create_full_put_path on;
                        dav_access user:rw group:r all:r;
                        {directives}
                    }}
                }}
            }}
        """))
        self.proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(workdir)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        wait_for_port(self.port)
        self.url = f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[str]:
        """'METHOD /path STATUS' per request, from the access log."""
        lines = (self.workdir / "access.log").read_text().splitlines()
        out = []
        for line in lines:
            fields = line.split('"')
            method, path = fields[1].split()[:2]
            out.append(f"{method} {path} {fields[2].split()[0]}")
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


class Registry:
    """Debian's docker-registry (the CNCF distribution registry) on a loopback port, storing into `workdir`."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("docker-registry")
        assert binary, "docker-registry is not installed: apt-get install docker-registry (or nox -s tests)"
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = workdir / "config.yml"
        conf.write_text(textwrap.dedent(f"""
            version: 0.1
            log: {{level: warn}}
            storage: {{filesystem: {{rootdirectory: {workdir / "data"}}}, delete: {{enabled: true}}}}
            http: {{addr: "127.0.0.1:{self.port}"}}
        """))
        with open(workdir / "registry.log", "wb") as log:
            self.proc = subprocess.Popen([binary, "serve", str(conf)], stdout=subprocess.DEVNULL, stderr=log)
        wait_for_port(self.port)
        self.host = f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)
