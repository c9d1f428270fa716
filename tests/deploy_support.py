"""The files of deploy/, run as a test's own processes: PgBouncer and nginx
from Debian and `pgbell serve` as its systemd unit starts it, each on free
ports, with configuration rendered from deploy/ into a temporary directory.

Rendering replaces only ports, paths, the database name and secrets, each
an exact string of the deploy/ file that must be there: an edit of deploy/
that drops one fails the tests instead of silently testing something else.
Every wait is bounded, and stop() kills what did not stop in time.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import pwd
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from psycopg.conninfo import conninfo_to_dict

from tests.support import JWT_SECRET, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PGBELL = Path(sys.executable).with_name("pgbell")
INSTALLED_PGBELL = "/opt/pgbell/bin/pgbell"  # where the units expect it
START_WAIT = 20.0
STOP_WAIT = 15.0
# the password of the test's PgBouncer login (the machine's PostgreSQL trusts it)
BOUNCER_PASSWORD = "pgbouncer-test-password"


def tool(name: str) -> str:
    """A Debian binary (nginx and pgbouncer live in /usr/sbin)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    assert found, f"{name} is not installed: `make test` installs it (apt-get install {name})"
    return found


def render(path: Path, replacements: dict[str, str]) -> str:
    """The text of a deploy/ file with each key replaced; every key must occur."""
    text = path.read_text()
    for old, new in replacements.items():
        assert old in text, f"{path.relative_to(ROOT)} no longer contains {old!r}"
        text = text.replace(old, new)
    return text


def env_file(path: Path) -> dict[str, str]:
    """A systemd EnvironmentFile, as systemd reads these simple ones."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep and '"' not in value and "'" not in value, f"{path.name}: {line!r}"
            env[key] = value
    return env


def exec_start(unit: Path, instance: str = "") -> list[str]:
    """The unit's ExecStart, with this checkout's pgbell and %i = instance."""
    lines = [x for x in unit.read_text().splitlines() if x.startswith("ExecStart=")]
    assert len(lines) == 1, f"{unit.name}: one ExecStart expected, found {lines}"
    argv = shlex.split(lines[0].removeprefix("ExecStart=").replace("%i", instance))
    assert argv[0] == INSTALLED_PGBELL, argv
    return [str(PGBELL), *argv[1:]]


def deploy_env(pool_url: str, listen_url: str) -> dict[str, str]:
    """deploy/pgbell.env, with this test's URLs and secret."""
    settings = env_file(DEPLOY / "pgbell.env")
    assert settings["PGBELL_DB_POOL_MODE"] == "transaction"
    return {
        **os.environ,
        **settings,
        "DATABASE_URL": pool_url,
        "PGBELL_LISTEN_DATABASE_URL": listen_url,
        "PGBELL_JWT_SECRET": JWT_SECRET,
    }


def scratch_dir() -> Path:
    """A directory the services' own users can read: PgBouncer refuses to run
    as root and drops to `postgres`, which cannot enter pytest's tmp_path."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="pgbell-deploy-"))
    path.chmod(0o777)
    return path


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fullchain.pem", directory / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def client_tls(cert: Path) -> ssl.SSLContext:
    """Trusts the test's certificate and nothing else; checks the host name."""
    return ssl.create_default_context(cafile=str(cert))


async def _port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


@dataclass
class Process:
    """A child process with its output in a file; stop() never waits forever."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            # a process group of its own: kill() reaches its children too
            # (nginx's workers outlive a master killed with SIGKILL)
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                env=self.env,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def assert_running(self) -> None:
        assert self.running(), f"{self.name} exited: {self.tail()}"

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send `sig`, return the exit status; SIGKILL after STOP_WAIT."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_WAIT)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
                raise AssertionError(
                    f"{self.name} ignored signal {sig} for {STOP_WAIT} s"
                ) from None
        return self.proc.returncode

    async def kill(self) -> None:
        """SIGKILL to the whole process group, whatever state it is in."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # the group is gone already
        await self.proc.wait()


@dataclass
class PgBouncer:
    """deploy/pgbouncer/pgbouncer.ini on a free port, in front of the
    database of `upstream` (a URL: TCP, or the embedded server's socket)."""

    directory: Path
    upstream: str
    pool_mode: str = "transaction"
    # server connections per database and login
    pool_size: int = 20
    port: int = field(default_factory=free_port)
    process: Process | None = None

    @property
    def database(self) -> str:
        return conninfo_to_dict(self.upstream)["dbname"]

    def url(self, user: str = "postgres") -> str:
        return f"postgresql://{user}:{BOUNCER_PASSWORD}@127.0.0.1:{self.port}/{self.database}"

    def write_config(self) -> Path:
        d = self.directory
        where = {"host": "127.0.0.1", "port": "5432", **conninfo_to_dict(self.upstream)}
        (d / "userlist.txt").write_text(f'"postgres" "{BOUNCER_PASSWORD}"\n')
        text = render(
            DEPLOY / "pgbouncer" / "pgbouncer.ini",
            {
                "app = host=127.0.0.1 port=5432 dbname=app": (
                    f"{self.database} = host={where['host']} port={where['port']}"
                    f" dbname={self.database}"
                ),
                "listen_port = 6432": f"listen_port = {self.port}",
                "unix_socket_dir = /var/run/postgresql": f"unix_socket_dir = {d}",
                "logfile = /var/log/postgresql/pgbouncer.log": f"logfile = {d}/pgbouncer.log",
                "pidfile = /var/run/postgresql/pgbouncer.pid": f"pidfile = {d}/pgbouncer.pid",
                "auth_file = /etc/pgbouncer/userlist.txt": f"auth_file = {d}/userlist.txt",
                "pool_mode = transaction": f"pool_mode = {self.pool_mode}",
                "default_pool_size = 20": f"default_pool_size = {self.pool_size}",
            },
        )
        ini = d / "pgbouncer.ini"
        ini.write_text(text)
        for path in (ini, d / "userlist.txt"):
            path.chmod(0o644)
        return ini

    def _user(self) -> list[str]:
        """PgBouncer refuses to run as root: it takes the identity of the
        machine's `postgres`, or of the owner of the embedded server's socket
        directory, which only that owner may enter."""
        if os.geteuid() != 0:
            return []
        host = conninfo_to_dict(self.upstream).get("host", "")
        if host.startswith("/"):
            return ["-u", pwd.getpwuid(Path(host).stat().st_uid).pw_name]
        return ["-u", "postgres"]

    async def start(self) -> None:
        ini = self.write_config()
        user = self._user()
        self.process = Process(
            "pgbouncer", [tool("pgbouncer"), *user, str(ini)], self.directory / "stderr.log"
        )
        await self.process.start()

        async def listening() -> bool:
            self.process.assert_running()
            return await _port_open(self.port)

        await wait_until(listening, f"PgBouncer listening on {self.port}", timeout=START_WAIT)

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop(signal.SIGTERM)  # immediate shutdown: clients are cut

    async def kill(self) -> None:
        if self.process is not None:
            await self.process.kill()


@dataclass
class Nginx:
    """deploy/nginx/pgbell.conf in front of `upstreams`, on free ports."""

    directory: Path
    upstreams: tuple[int, int]
    cert: Path
    key: Path
    tls_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: Process | None = None

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def ws_base(self) -> str:
        return f"wss://127.0.0.1:{self.tls_port}"

    def write_config(self) -> Path:
        d = self.directory
        a, b = self.upstreams
        site = render(
            DEPLOY / "nginx" / "pgbell.conf",
            {
                "listen 443 ssl;": f"listen 127.0.0.1:{self.tls_port} ssl;",
                "listen 80;": f"listen 127.0.0.1:{self.http_port};",
                "127.0.0.1:8081": f"127.0.0.1:{a}",
                "127.0.0.1:8082": f"127.0.0.1:{b}",
                "/etc/ssl/pgbell/fullchain.pem": str(self.cert),
                "/etc/ssl/pgbell/privkey.pem": str(self.key),
                "/var/log/nginx/pgbell.access.log": str(d / "pgbell.access.log"),
            },
        )
        (d / "pgbell.conf").write_text(site)
        # What Debian's /etc/nginx/nginx.conf provides around a site, with
        # every path in this directory.
        temp = "\n".join(
            f"    {kind}_temp_path {d}/{kind}_temp;"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        main = d / "nginx.conf"
        main.write_text(
            ("user root;\n" if os.geteuid() == 0 else "")
            + f"daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\n"
            f"error_log {d}/error.log info;\n"
            "events { worker_connections 512; }\n"
            "http {\n"
            f"    access_log {d}/access.log;\n{temp}\n"
            f"    include {d}/pgbell.conf;\n"
            "}\n"
        )
        return main

    async def start(self) -> None:
        main = self.write_config()
        d = self.directory
        argv = [tool("nginx"), "-p", str(d), "-e", str(d / "error.log"), "-c", str(main)]
        check = await asyncio.to_thread(
            subprocess.run, [*argv, "-t"], capture_output=True, text=True, timeout=30
        )
        assert check.returncode == 0, f"nginx -t refused the configuration: {check.stderr}"
        self.process = Process("nginx", argv, d / "stderr.log")
        await self.process.start()

        async def listening() -> bool:
            self.process.assert_running()
            return await _port_open(self.tls_port)

        await wait_until(listening, f"nginx listening on {self.tls_port}", timeout=START_WAIT)

    async def stop(self) -> None:
        if self.process is not None:
            # fast shutdown: a graceful one (SIGQUIT) waits for every open WebSocket
            await self.process.stop(signal.SIGTERM)

    async def kill(self) -> None:
        if self.process is not None:
            await self.process.kill()


@dataclass
class Pgbell:
    """`pgbell serve` as pgbell@<port>.service starts it, with `env`."""

    directory: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: Process | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / f"pgbell-{self.port}.log"

    async def start(self, http: aiohttp.ClientSession) -> None:
        argv = exec_start(DEPLOY / "systemd" / "pgbell@.service", str(self.port))
        self.process = Process(f"pgbell@{self.port}", argv, self.log, env=self.env)
        await self.process.start()

        async def ready() -> bool:
            self.process.assert_running()
            try:
                async with http.get(f"{self.base}/readyz") as r:
                    return r.status == 200
            except aiohttp.ClientConnectionError:
                return False

        try:
            await wait_until(ready, f"pgbell@{self.port} answering /readyz 200", START_WAIT)
        except AssertionError as e:
            raise AssertionError(f"{e}; its log ends:\n{self.process.tail()}") from None

    async def stop(self) -> int:
        assert self.process is not None
        return await self.process.stop(signal.SIGTERM)

    async def kill(self) -> None:
        if self.process is not None:
            await self.process.kill()
