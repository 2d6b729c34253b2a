"""The MQTT broker of tests and the devnet: Debian's mosquitto, configured as operators run it.

`python -m agent.broker --port N --dir D` writes a mosquitto config into D and replaces itself with
mosquitto (exec), so whoever started it holds mosquitto's own pid. `broker_config` is the same
config as a value, for a gateway's own broker:
- one listener on 127.0.0.1 (never the wildcard address), plain or TLS;
- persistence on: a persistent session's queued and unacknowledged QoS 1 messages survive an
  agent's kill -9 and a broker restart (the agent acknowledges a frame only once it is on disk);
- a log file (`BrokerConfig.log_file`) with connection messages: the agent reads refused logins
  from it (agent/brokerlog.py);
- optional per-device credentials with an ACL: a device may publish only to its own topic
  (`faultproof/v1/devices/<its username>/frames`, and `/evidence` when asked on `/attest`), the
  agent may only read the frame and evidence topics and write attestation requests.
  Passwords are hashed into mosquitto's password file by `mosquitto_passwd -U` (never on a
  command line).
`dev_tls_material` makes a throwaway CA and server certificate for tests and the devnet only; a
gateway uses its own PKI.

This file must never be imported by the agent daemon itself, and never logs a password.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

AGENT_USER = "faultproof-agent"


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path


@dataclass(frozen=True)
class BrokerConfig:
    port: int
    workdir: Path
    tls: TlsFiles | None = None
    # username -> password; empty: anonymous clients allowed (each still gives a username, which
    # keeps the agent's session persistent)
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def log_file(self) -> Path:
        """mosquitto's log (the agent's `[mqtt] broker_log`)."""
        return self.workdir / "mosquitto.log"


def broker_config(cfg: BrokerConfig) -> str:
    lines = [f"listener {cfg.port} 127.0.0.1",
             # started as root, mosquitto would switch to the `mosquitto` user and lose its folder
             f"user {pwd.getpwuid(os.geteuid()).pw_name}",
             "persistence true", f"persistence_location {cfg.workdir}/",
             "autosave_interval 1",
             # Queue enough QoS 1 messages for a restarting agent (default 1000), and let many be in
             # flight to the agent at once: it acknowledges a whole group commit together (default 20).
             "max_queued_messages 100000", "max_inflight_messages 1000",
             # DESIGN §15: the agent reads refused logins from this log (agent/brokerlog.py)
             "log_dest stderr", f"log_dest file {cfg.log_file}", "log_timestamp true", "connection_messages true",
             "log_type error", "log_type warning", "log_type notice", "log_type information"]
    if cfg.tls is not None:
        lines += [f"cafile {cfg.tls.ca_cert}", f"certfile {cfg.tls.server_cert}", f"keyfile {cfg.tls.server_key}",
                  "tls_version tlsv1.2"]
    if cfg.passwords:
        lines += ["allow_anonymous false", f"password_file {cfg.workdir / 'passwd'}",
                  f"acl_file {cfg.workdir / 'acl'}"]
    else:
        lines += ["allow_anonymous true"]
    return "\n".join(lines) + "\n"


def acl_text() -> str:
    # DESIGN §15: the agent asks a device for attestation evidence on .../attest, it answers on .../evidence
    return (f"user {AGENT_USER}\ntopic read faultproof/v1/devices/+/frames\n"
            "topic read faultproof/v1/devices/+/evidence\ntopic write faultproof/v1/devices/+/attest\n\n"
            "# every other user is a device: its own topics only\n"
            "pattern write faultproof/v1/devices/%u/frames\npattern write faultproof/v1/devices/%u/evidence\n"
            "pattern read faultproof/v1/devices/%u/attest\n")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def write_broker_files(cfg: BrokerConfig) -> Path:
    """Write mosquitto.conf (and the hashed password file and ACL); return the config's path."""
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    if cfg.passwords:
        passwd = cfg.workdir / "passwd"
        _write_private(passwd, "".join(f"{user}:{password}\n" for user, password in cfg.passwords.items()))
        tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        subprocess.run([tool, "-U", str(passwd)], check=True, capture_output=True)  # hashes in place
        (cfg.workdir / "acl").write_text(acl_text())
    conf = cfg.workdir / "mosquitto.conf"
    conf.write_text(broker_config(cfg))
    return conf


def dev_tls_material(directory: Path) -> TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 (tests and the devnet only)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "faultproof dev broker CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(files.server_key, key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()).decode())
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description="Run mosquitto on 127.0.0.1 as tests and the devnet need it.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True, help="Config and persistence folder (its own per broker).")
    args = parser.parse_args()
    binary = mosquitto_binary()
    if binary is None:
        raise SystemExit("error: mosquitto is not installed; `make setup` installs it (apt-get install mosquitto)")
    workdir = args.dir.resolve()
    conf = write_broker_files(BrokerConfig(args.port, workdir))
    os.execv(binary, [binary, "-c", str(conf)])


if __name__ == "__main__":
    main()
