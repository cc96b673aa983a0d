"""Real Linux login stacks (sssd or nslcd, NSS and PAM) pointed at a sandbox directory.

A ``ClientStack`` runs one stack the way a Linux host would, but without touching the
host: a long-lived shell started with ``unshare --mount --propagation private`` mounts a
private /run, /etc/nsswitch.conf, /etc/pam.d and the stack's own configuration and
runtime directories over the real paths, then sleeps. The daemon and every command
(getent, id, pamtester, sudo, sss_ssh_authorizedkeys, the key lookup script) run inside that
mount namespace through ``nsenter``, so they see the private files while the host keeps
its own. Everything is undone by ``stop()``: killing the processes of the namespace
drops its mounts.

Each stack also runs a real ``sshd`` in its namespace, on a free loopback port with its
own host key, Debian's sshd_config and the stack's ``AuthorizedKeysCommand``; its PAM services
(``sshd``, ``su`` and the test service) are Debian's, including ``common-auth``,
``common-account`` and ``common-session`` built from the stack's PAM lines. Every login
path a host offers is a method: ``getent_passwd``, ``id``, ``authenticate`` (PAM auth),
``account`` (the PAM account phase alone, what sshd runs after a key), ``su_from_root``,
``su_with_password``, ``ssh_key_login``, ``ssh_password_login`` and ``ssh_keys`` (the key
lookup alone).

Installing the packages edits the host's NSS and PAM configuration (the postinst
scripts of libnss-sss, libnss-ldapd and the libpam-* profiles) and may start daemons;
``tests.e2e.packages.install_packages`` backs those files up, keeps daemons from
starting, and restores the files byte for byte afterwards.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Self

from ldap3 import HASHED_SALTED_SHA, SUBTREE, Connection
from ldap3.utils.hashed import hashed

from app.ldap.sandbox import SandboxDirectory
from tests.e2e.hostfiles import (
    ASKPASS,
    KEYS_COMMAND,
    KEYS_SCRIPT,
    NSSWITCH_NSLCD,
    NSSWITCH_SSSD,
    PAM_NSLCD,
    PAM_PASSWORD,
    PAM_SESSION,
    PAM_SSHD_SERVICE,
    PAM_SSSD,
    PAM_SU_LOGIN_SERVICE,
    PAM_SU_SERVICE,
    PAM_SUDO_SERVICE,
    PAM_TEST_SERVICE,
    SERVICE,
    SSHD_HARNESS,
    SSHD_STOCK,
    SSS_KEYS_COMMAND,
    ldap_keys_script,
    nslcd_options,
)
from tests.e2e.processes import DAEMON_NAMES, STOP_TIMEOUT, ClientError, kill, processes

StackKind = Literal["sssd", "nslcd"]

SSH_TIMEOUT = 20.0
SSH_CONNECT_TIMEOUT = 5
UNPRIVILEGED = "nobody"
START_TIMEOUT = 20.0
COMMAND_TIMEOUT = 30.0
FLUSH_ATTEMPTS = 3

NAMESPACE_SETUP = r"""
set -eu
root=$1
kind=$2
mount -t tmpfs -o mode=0755 scim-e2e /run
mkdir -m 0755 /run/sshd
mount --bind "$root/nsswitch.conf" /etc/nsswitch.conf
mount --bind "$root/pam.d" /etc/pam.d
mount -t tmpfs -o mode=0755 scim-e2e /usr/local/sbin
if [ -f "$root/ldap-ssh-keys" ]; then
    install -m 0755 -o root -g root "$root/ldap-ssh-keys" /usr/local/sbin/ldap-ssh-keys
fi
if [ "$kind" = sssd ]; then
    mount --bind "$root/sssd" /etc/sssd
    mount -t tmpfs -o mode=0755 scim-e2e /var/lib/sss
    mkdir -p /var/lib/sss/db /var/lib/sss/pipes/private /var/lib/sss/mc \
        /var/lib/sss/pubconf /var/lib/sss/gpo_cache /var/lib/sss/keytabs
    chmod 0700 /var/lib/sss/db /var/lib/sss/pipes/private
    if [ -d /var/log/sssd ]; then
        mount -t tmpfs -o mode=0750 scim-e2e /var/log/sssd
    fi
else
    mkdir -m 0755 /run/nslcd
    chown nslcd:nslcd /run/nslcd
    mount --bind "$root/nslcd.conf" /etc/nslcd.conf
fi
echo ready
exec sleep infinity
"""


@dataclass(frozen=True)
class LoginUser:
    """A POSIX account added straight to LDAP, with its own primary group."""

    uid: str
    uid_number: int
    password: str
    key: str
    dn: str
    group_dn: str


def add_login_user(
    conn: Connection,
    directory: SandboxDirectory,
    uid: str,
    uid_number: int,
    *,
    password: str,
    key: str,
    attributes: Mapping[str, object] | None = None,
) -> LoginUser:
    """Add ``uid`` as inetOrgPerson, posixAccount, shadowAccount, ldapPublicKey and scimUser
    (``scimActive: TRUE``, an {SSHA} userPassword, one sshPublicKey) and a posixGroup of
    the same name and number as its primary group."""
    group_dn = f"cn={uid},{directory.groups_dn}"
    if not conn.add(group_dn, ["posixGroup"], {"cn": uid, "gidNumber": uid_number}):
        raise ClientError(f"cannot add {group_dn}: {conn.result}")
    dn = f"uid={uid},{directory.users_dn}"
    values: dict[str, object] = {
        "cn": uid,
        "sn": uid,
        "uidNumber": uid_number,
        "gidNumber": uid_number,
        "homeDirectory": f"/home/{uid}",
        "loginShell": "/bin/bash",
        "userPassword": hashed(HASHED_SALTED_SHA, password),
        "sshPublicKey": key,
        "scimActive": "TRUE",
    }
    values.update(attributes or {})
    classes = ["inetOrgPerson", "posixAccount", "shadowAccount", "ldapPublicKey", "scimUser"]
    if not conn.add(dn, classes, values):
        conn.delete(group_dn)
        raise ClientError(f"cannot add {dn}: {conn.result}")
    return LoginUser(uid, uid_number, password, key, dn, group_dn)


def remove_login_user(conn: Connection, directory: SandboxDirectory, user: LoginUser) -> None:
    """Delete the user wherever it was moved to, and its group."""
    conn.search(directory.base_dn, f"(uid={user.uid})", SUBTREE, attributes=[])
    for entry in list(conn.entries):
        conn.delete(entry.entry_dn)
    conn.delete(user.group_dn)


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


class ClientStack:
    """One Linux login stack (sssd or nslcd with its NSS and PAM modules, and sshd) in a
    private mount namespace, pointed at a sandbox directory.

    ``config`` is the text of sssd.conf or nslcd.conf, ``nsswitch`` of nsswitch.conf and
    ``pam`` the lines that become common-auth, common-account and common-session by their
    type (without session lines, common-session is Debian's; common-password is always).
    ``sshd`` holds the host's sshd_config lines (its AuthorizedKeysCommand), placed before
    Debian's sshd_config and the harness's listener settings. ``keys_script`` replaces the
    nslcd host's key lookup script derived from its config; it is installed as
    ``KEYS_COMMAND``.

    The methods that check a login path may run in parallel, on one stack too (an ssh
    login is matched in the sshd log by user and method, so checks of different users
    or methods do not mix).
    """

    def __init__(
        self,
        kind: StackKind,
        directory: SandboxDirectory,
        config: str,
        nsswitch: str | None = None,
        pam: str | None = None,
        *,
        sshd: str | None = None,
        keys_script: str | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.kind: StackKind = kind
        self.directory = directory
        self.config = config
        self.nsswitch = nsswitch or (NSSWITCH_SSSD if kind == "sssd" else NSSWITCH_NSLCD)
        self.pam = pam or (PAM_SSSD if kind == "sssd" else PAM_NSLCD)
        self.sshd = sshd or SSHD_STOCK[kind]
        self.keys_script = keys_script
        self.ssh_port = 0
        self._parent_dir = workdir
        self._root: Path | None = None
        self._holder: subprocess.Popen[bytes] | None = None
        self._namespace: int | None = None
        self._daemon: subprocess.Popen[bytes] | None = None
        self._sshd: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> Path:
        if self._root is None:
            raise ClientError(f"{self.kind} stack is not started")
        return self._root

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.kind}.log"

    @property
    def sshd_log_path(self) -> Path:
        return self.root / "sshd.log"

    @property
    def keys_command(self) -> str:
        """The key lookup sshd runs: sss_ssh_authorizedkeys, or the nslcd host's script."""
        return SSS_KEYS_COMMAND if self.kind == "sssd" else KEYS_COMMAND

    def start(self) -> Self:
        if self._root is not None:
            return self
        if os.geteuid() != 0:
            raise ClientError("client stacks need root (mount namespaces, PAM as any user)")
        if self._parent_dir is not None:
            self._parent_dir.mkdir(parents=True, exist_ok=True)
        self._root = Path(tempfile.mkdtemp(prefix=f"scim-e2e-{self.kind}-", dir=self._parent_dir))
        try:
            self._write_files()
            self._enter_namespace()
            self._start_daemon()
            self._start_sshd()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the daemons and every other process of the namespace, and remove the files."""
        for attribute in ("_sshd", "_daemon"):
            process: subprocess.Popen[bytes] | None = getattr(self, attribute)
            setattr(self, attribute, None)
            if process is not None:
                kill([process.pid])
                with suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=STOP_TIMEOUT)
        holder, self._holder = self._holder, None
        namespace, self._namespace = self._namespace, None
        if namespace is not None:
            kill(
                pid
                for pid, (_, inode) in processes().items()
                if inode == namespace and (holder is None or pid != holder.pid)
            )
        if holder is not None:
            kill([holder.pid])
            with suppress(subprocess.TimeoutExpired):
                holder.wait(timeout=STOP_TIMEOUT)
            if holder.stdout is not None:
                holder.stdout.close()
        root, self._root = self._root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def run(
        self, argv: Sequence[str], *, stdin: str | None = None, timeout: float = COMMAND_TIMEOUT
    ) -> CommandResult:
        """Run a command inside the stack's mount namespace."""
        result = subprocess.run(
            self._nsenter(argv),
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"},
            check=False,
        )
        return CommandResult(result.returncode, result.stdout, result.stderr)

    def run_on_terminal(
        self, argv: Sequence[str], answer: str, *, timeout: float = COMMAND_TIMEOUT
    ) -> CommandResult:
        """Run a command inside the namespace on a fresh pseudo-terminal (its controlling
        terminal) and type ``answer`` at the first prompt ending in a colon."""
        leader, follower = os.openpty()
        try:
            process = subprocess.Popen(
                self._nsenter(["setsid", "--ctty", "--wait", *argv]),
                stdin=follower,
                stdout=follower,
                stderr=follower,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "TERM": "dumb"},
            )
        finally:
            os.close(follower)
        output = b""
        answered = False
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([leader], [], [], 0.1)
                if ready:
                    try:
                        chunk = os.read(leader, 4096)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        break
                    output += chunk
                    if not answered and output.rstrip().endswith(b":"):
                        os.write(leader, answer.encode() + b"\n")
                        answered = True
                elif process.poll() is not None:
                    break
            try:
                returncode = process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                returncode = process.wait()
        finally:
            os.close(leader)
        return CommandResult(returncode, output.decode(errors="replace"), "")

    def getent_passwd(self, user: str) -> str | None:
        """The passwd line NSS gives for ``user``, or None when it knows no such user."""
        result = self.run(["getent", "passwd", user])
        line = result.stdout.strip()
        return line if result.returncode == 0 and line else None

    def id(self, user: str) -> str | None:
        result = self.run(["id", user])
        line = result.stdout.strip()
        return line if result.returncode == 0 and line else None

    def getent_group(self, group: str) -> str | None:
        """The group line NSS gives for ``group``, or None when it knows no such group."""
        result = self.run(["getent", "group", group])
        line = result.stdout.strip()
        return line if result.returncode == 0 and line else None

    def sudo_list(self, user: str) -> str:
        """What root's ``sudo -ll -U USER`` says ``user`` may run (sudo's own words; the
        long form names the LDAP role each rule comes from)."""
        result = self.run(["sudo", "-n", "-ll", "-U", user])
        return (result.stdout + result.stderr).strip()

    def authenticate(self, user: str, password: str) -> bool:
        """Whether the PAM auth phase accepts ``password`` for ``user``."""
        return self._pamtester(user, "authenticate", stdin=password + "\n")

    def account(self, user: str) -> bool:
        """Whether the PAM account phase (acct_mgmt, run for every login) lets ``user`` in."""
        return self._pamtester(user, "acct_mgmt")

    def su_from_root(self, user: str) -> bool:
        """Whether root's ``su -s /bin/sh - USER -c true`` runs (pam_rootok, then the PAM
        account and session phases; the shell is chosen by root, so no loginShell stops it)."""
        return self.run(["su", "-s", "/bin/sh", "-", user, "-c", "true"]).returncode == 0

    def su_with_password(self, user: str, password: str) -> bool:
        """Whether an unprivileged local user (``nobody``) becomes ``user`` by typing its
        password to ``su`` on a terminal."""
        argv = [
            "setpriv",
            f"--reuid={UNPRIVILEGED}",
            f"--regid={_primary_group(UNPRIVILEGED)}",
            "--clear-groups",
            "--reset-env",
            "su",
            "-s",
            "/bin/sh",
            "-",
            user,
            "-c",
            "true",
        ]
        return self.run_on_terminal(argv, password).returncode == 0

    def ssh_keys(self, user: str) -> list[str]:
        """The keys sshd's AuthorizedKeysCommand prints for ``user``, run as sshd runs it
        (as its AuthorizedKeysCommandUser)."""
        command_user = _sshd_option(self.sshd, "AuthorizedKeysCommandUser") or "root"
        command = (_sshd_option(self.sshd, "AuthorizedKeysCommand") or self.keys_command).split()
        argv = [part.replace("%u", user) for part in command]
        if command_user != "root":
            argv = [
                "setpriv",
                f"--reuid={command_user}",
                f"--regid={_primary_group(command_user)}",
                "--clear-groups",
                *argv,
            ]
        result = self.run(argv)
        if result.returncode != 0:
            return []
        return [line.strip() for line in result.stdout.splitlines() if line.strip()]

    def ssh_key_login(self, user: str, identity: Path) -> bool:
        """Whether sshd accepts a public-key login of ``user`` with the private key
        ``identity`` (``true`` runs, or sshd logs that it accepted the key)."""
        options = [
            "-i",
            str(identity),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "PreferredAuthentications=publickey",
        ]
        return self._ssh(user, options, "publickey")

    def ssh_password_login(self, user: str, password: str) -> bool:
        """Whether sshd accepts ``password`` for ``user`` (the password method, or
        keyboard-interactive where the sshd_config enables it; PAM either way), typed by an
        askpass program."""
        secret = self.root / f"secret-{threading.get_ident()}"
        secret.touch(mode=0o600)
        secret.write_text(password + "\n")
        options = [
            "-o",
            "BatchMode=no",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=keyboard-interactive,password",
            "-o",
            "NumberOfPasswordPrompts=1",
        ]
        env = {
            "SSH_ASKPASS": str(self.root / "askpass"),
            "SSH_ASKPASS_REQUIRE": "force",
            "SCIM_E2E_SECRET": str(secret),
        }
        try:
            return self._ssh(user, options, "(keyboard-interactive/pam|password)", env)
        finally:
            secret.unlink(missing_ok=True)

    def flush(self) -> None:
        """Make the next lookup of any user or group go to LDAP.

        nslcd keeps no user cache (and no nscd runs), so only sssd has one to expire.
        """
        if self.kind != "sssd":
            return
        for _ in range(FLUSH_ATTEMPTS):
            result = self.run(["sss_cache", "-E"])
            if result.returncode == 0:
                return
            time.sleep(0.2)
        output = (result.stderr or result.stdout).strip() or "no output"
        raise ClientError(f"sss_cache -E failed (exit {result.returncode}): {output}")

    def restart(self) -> None:
        """What an admin does after a change in the directory: ``sss_cache -E`` and a
        restart of the daemon (which also drops sssd's negative and in-memory caches)."""
        self.flush()
        daemon, self._daemon = self._daemon, None
        if daemon is not None:
            kill([daemon.pid])
            with suppress(subprocess.TimeoutExpired):
                daemon.wait(timeout=STOP_TIMEOUT)
        if self._namespace is not None:
            kill(
                pid
                for pid, (name, inode) in processes().items()
                if inode == self._namespace and name in DAEMON_NAMES
            )
        self._start_daemon()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, ClientError):
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def sshd_log_tail(self, lines: int = 20) -> str:
        try:
            text = self.sshd_log_path.read_text(errors="replace")
        except (OSError, ClientError):
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def _nsenter(self, argv: Sequence[str]) -> list[str]:
        if self._holder is None:
            raise ClientError(f"{self.kind} stack is not started")
        return ["nsenter", "--mount", f"--target={self._holder.pid}", "--", *argv]

    def _ssh(
        self,
        user: str,
        options: Sequence[str],
        method: str,
        env: Mapping[str, str] | None = None,
    ) -> bool:
        log = self.sshd_log_path
        offset = log.stat().st_size
        argv = [
            "ssh",
            "-F",
            "/dev/null",
            "-p",
            str(self.ssh_port),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            f"ConnectTimeout={SSH_CONNECT_TIMEOUT}",
            "-o",
            "LogLevel=ERROR",
            *options,
            "-l",
            user,
            "127.0.0.1",
            "true",
        ]
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=SSH_TIMEOUT,
            env={"PATH": "/usr/bin:/bin", "LANG": "C", "HOME": str(self.root), **(env or {})},
            check=False,
        )
        accepted = re.compile(rf"Accepted {method} for {re.escape(user)} from")
        deadline = time.monotonic() + 2.0
        while True:
            with log.open("rb") as stream:
                stream.seek(offset)
                text = stream.read().decode(errors="replace")
            if accepted.search(text):
                return True
            if result.returncode != 0 or time.monotonic() > deadline:
                return result.returncode == 0
            time.sleep(0.05)

    def _pamtester(self, user: str, operation: str, *, stdin: str = "") -> bool:
        return self.run(["pamtester", SERVICE, user, operation], stdin=stdin).returncode == 0

    def _write_files(self) -> None:
        root = self.root
        root.chmod(0o755)
        (root / "nsswitch.conf").write_text(self.nsswitch)
        self._write_pam(root / "pam.d")
        self._write_sshd(root)
        if self.kind == "sssd":
            sssd_dir = root / "sssd"
            sssd_dir.mkdir(mode=0o700)
            (sssd_dir / "conf.d").mkdir(mode=0o700)
            conf = sssd_dir / "sssd.conf"
            conf.write_text(self.config)
            conf.chmod(0o600)
            return
        conf = root / "nslcd.conf"
        conf.write_text(self.config)
        conf.chmod(0o640)
        os.chown(conf, 0, _group_id("nslcd"))
        password_file = root / "bindpw"
        password_file.write_text(nslcd_options(self.config).get("bindpw", ""))
        password_file.chmod(0o640)
        os.chown(password_file, 0, _group_id("nslcd"))
        script = root / KEYS_SCRIPT
        script.write_text(
            self.keys_script or ldap_keys_script(self.config, KEYS_COMMAND, str(password_file))
        )
        script.chmod(0o755)

    def _write_pam(self, pam_dir: Path) -> None:
        pam_dir.mkdir()
        lines = [
            line for line in self.pam.splitlines() if line.strip() and not line.startswith("#")
        ]
        for phase in ("auth", "account"):
            chosen = [line for line in lines if line.split(None, 1)[0] == phase]
            (pam_dir / f"common-{phase}").write_text("\n".join(chosen) + "\n")
        session = [line for line in lines if line.split(None, 1)[0] == "session"]
        session = session or PAM_SESSION[self.kind].splitlines()
        (pam_dir / "common-session").write_text("\n".join(session) + "\n")
        (pam_dir / "common-session-noninteractive").write_text("\n".join(session) + "\n")
        (pam_dir / "common-password").write_text(PAM_PASSWORD)
        (pam_dir / SERVICE).write_text(PAM_TEST_SERVICE)
        (pam_dir / "sshd").write_text(PAM_SSHD_SERVICE)
        (pam_dir / "su").write_text(PAM_SU_SERVICE)
        (pam_dir / "su-l").write_text(PAM_SU_LOGIN_SERVICE)
        (pam_dir / "sudo").write_text(PAM_SUDO_SERVICE)
        (pam_dir / "other").write_text(
            "auth required pam_deny.so\naccount required pam_deny.so\n"
            "password required pam_deny.so\nsession required pam_deny.so\n"
        )

    def _write_sshd(self, root: Path) -> None:
        key = root / "ssh_host_ed25519_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(key)],
            check=True,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
        )
        self.ssh_port = _free_port()
        harness = SSHD_HARNESS.format(port=self.ssh_port, root=root)
        (root / "sshd_config").write_text(self.sshd.rstrip("\n") + "\n" + harness)
        askpass = root / "askpass"
        askpass.write_text(ASKPASS)
        askpass.chmod(0o755)

    def _enter_namespace(self) -> None:
        with (self.root / "namespace.log").open("wb") as log:
            holder = self._spawn_holder(log)
        self._holder = holder
        assert holder.stdout is not None
        ready, _, _ = select.select([holder.stdout], [], [], START_TIMEOUT)
        line = holder.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            log_text = (self.root / "namespace.log").read_text(errors="replace").strip()
            raise ClientError(f"mount namespace setup failed: {log_text or 'no output'}")
        self._namespace = os.stat(f"/proc/{holder.pid}/ns/mnt").st_ino

    def _spawn_holder(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "/bin/sh",
                "-c",
                NAMESPACE_SETUP,
                "scim-e2e-namespace",
                str(self.root),
                self.kind,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )

    def _start_daemon(self) -> None:
        assert self._holder is not None
        view = Path(f"/proc/{self._holder.pid}/root")
        if self.kind == "sssd":
            argv = ["sssd", "-i", "--logger=stderr"]
            sockets = [f"var/lib/sss/pipes/{name}" for name in _sssd_services(self.config)]
        else:
            argv = ["nslcd", "-d"]
            sockets = ["run/nslcd/socket"]
        for socket_path in sockets:
            (view / socket_path).unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self._daemon = subprocess.Popen(
                self._nsenter(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not all((view / socket_path).exists() for socket_path in sockets):
            if self._daemon.poll() is not None:
                raise ClientError(
                    f"{self.kind} exited with status {self._daemon.returncode}\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise ClientError(f"{self.kind} did not open its sockets\n{self.log_tail()}")
            time.sleep(0.05)

    def _start_sshd(self) -> None:
        config = self.root / "sshd_config"
        check = self.run(["/usr/sbin/sshd", "-t", "-f", str(config)])
        if check.returncode != 0:
            raise ClientError(f"sshd refuses its configuration: {check.stderr.strip()}")
        with self.sshd_log_path.open("ab") as log:
            self._sshd = subprocess.Popen(
                self._nsenter(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)]),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.settimeout(0.5)
                if probe.connect_ex(("127.0.0.1", self.ssh_port)) == 0:
                    return
            if self._sshd.poll() is not None or time.monotonic() > deadline:
                raise ClientError(f"sshd did not start\n{self.sshd_log_tail()}")
            time.sleep(0.05)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _primary_group(user: str) -> int:
    return pwd.getpwnam(user).pw_gid


def _sshd_option(config: str, name: str) -> str:
    """The value of the first ``name`` line of sshd_config text (sshd's first match wins)."""
    for raw in config.splitlines():
        words = raw.strip().split(None, 1)
        if len(words) == 2 and words[0].lower() == name.lower():
            return words[1].strip()
    return ""


def _sssd_services(config: str) -> list[str]:
    """The responders that sssd.conf starts (``services`` of ``[sssd]``) and have a socket."""
    match = re.search(r"^\s*services\s*=\s*(.*)$", config, re.MULTILINE)
    names = [name.strip() for name in match.group(1).split(",")] if match else []
    return [name for name in names if name in ("nss", "pam", "ssh", "sudo", "autofs")]


def _group_id(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError as exc:
        raise ClientError(f"group {name} missing: is nslcd installed?") from exc
