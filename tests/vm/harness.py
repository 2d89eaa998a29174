"""Run one command inside a QEMU VM whose Debian kernel has IPVS, on this machine's own root filesystem.

Usage, from the repository root, as root:

    python -m tests.vm.harness [--timeout S] [--memory MB] [--cpu MODEL] [--env NAME=VALUE ...]
                               [--systemd] CMD [ARGS...]
    python -m tests.vm.harness --prepare        # only fetch the kernel and build the boot files

What it does:
- First run: fetches the Debian kernel that `linux-image-amd64` depends on with `apt-get download`,
  unpacks it with `dpkg -x` into `.cache/vm/` (gitignored; set HEALTHD_VM_CACHE to use another folder),
  runs depmod, extracts an ELF `vmlinux` from the bzImage (faster direct boot under TCG) and builds a
  small busybox initramfs. Later runs reuse all of it and only boot (~10 s).
- Boots QEMU (TCG, 1 vCPU). The guest sees the host's `/` read-only over 9p with a tmpfs overlay on
  top (it may write anywhere; the writes vanish), and the checkout read-write at the same path (test
  reports written there survive). It loads `ip_vs` and every IPVS scheduler the kernel ships, then
  chroots into the host root, changes to the checkout and runs CMD with the venv's bin first on PATH.
- With --systemd, /init hands over to the host's systemd as PID 1 instead (switch_root into the same
  overlay root): a target pulls in only journald and a oneshot unit that runs CMD, writes its exit code
  and powers off. systemctl, journalctl, apt/dpkg and units behave as on a real machine; only the
  host's other services stay off. Boot to the command ~30 s under TCG (busybox: ~10 s).
- CMD's output is streamed to our stdout; we exit with CMD's exit code (124 on --timeout,
  125 when the VM itself failed: the tail of the kernel console log is then printed).

Inside the guest: HEALTHD_IN_VM=1 and HEALTHD_VM_INIT=busybox|systemd are set, the network has only
`lo` (up); network namespaces, veth pairs, iptables (e.g. mangle MARK for fwmark services) and nft
work, kernel modules load on demand; `ipvsadm` and every other tool are the host's. /tmp and /run
are empty tmpfs (host files in /tmp are not visible: keep inputs in the checkout). Variables passed
with --env and every HEALTHD_* variable of the caller are passed through.
Needs: qemu-system-x86 busybox-static kmod (Debian packages).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import lzma
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"  # the project's reference material, read by some kernel tests
KERNEL_META = "linux-image-amd64"
BOOT_MODULES = ["virtio_pci", "9pnet_virtio", "9p", "overlay", "virtio_console"]
SCHEDULERS = ("rr", "wrr", "wlc", "lc", "sh", "dh", "lblc", "lblcr", "sed", "nq", "mh", "fo", "ovf")
IPVS_MODULES = ["ip_vs"] + [f"ip_vs_{s}" for s in SCHEDULERS]
CACHE_FORMAT = 1  # bump when the boot files' layout changes, to rebuild them


class HarnessError(Exception):
    """The VM could not be prepared or booted; the message says why."""


def cache_dir() -> Path:
    return Path(os.environ.get("HEALTHD_VM_CACHE") or REPO / ".cache" / "vm").resolve()


def log(msg: str) -> None:
    print(f"vm: {msg}", file=sys.stderr, flush=True)


def sh(*args: str | Path, cwd: Path | None = None) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise HarnessError(f"`{shlex.join(map(str, args))}` failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout


# ---------------------------------------------------------------- preparing the boot files

def kernel_package() -> str:
    """The versioned kernel package that linux-image-amd64 currently depends on."""
    for attempt in range(2):
        out = subprocess.run(["apt-cache", "depends", KERNEL_META], capture_output=True, text=True).stdout
        for line in out.splitlines():
            dep = line.strip().removeprefix("Depends:").strip()
            if line.strip().startswith("Depends:") and dep.startswith("linux-image-"):
                return dep
        if attempt == 0:
            log("apt lists have no linux-image-amd64: running apt-get update")
            subprocess.run(["apt-get", "update", "-qq"], check=False)
    raise HarnessError("cannot find the kernel package that linux-image-amd64 depends on (apt-cache depends)")


def fetch_kernel(cache: Path) -> tuple[Path, str]:
    """Download and unpack the kernel package; return (unpacked root, kernel version)."""
    pkg = kernel_package()
    root = cache / "kernel" / pkg
    if not (root / ".complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        debs = cache / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        log(f"downloading {pkg}")
        try:
            sh("apt-get", "download", "-q", pkg, cwd=debs)
        except HarnessError:  # stale package lists: the mirror has moved on
            log("download failed: running apt-get update and trying again")
            subprocess.run(["apt-get", "update", "-qq"], check=False)
            sh("apt-get", "download", "-q", pkg, cwd=debs)
        deb = sorted(debs.glob(f"{pkg}_*.deb"))[-1]
        root.mkdir(parents=True)
        sh("dpkg", "-x", deb, root)
        deb.unlink()
        (root / ".complete").touch()
    versions = sorted(p.name for p in (root / "lib" / "modules").iterdir())
    if len(versions) != 1:
        raise HarnessError(f"expected one kernel version in {root}/lib/modules, found {versions}")
    kver = versions[0]
    sh("depmod", "-b", root, kver)
    return root, kver


def extract_vmlinux(bzimage: Path, out: Path) -> None:
    """Decompress the bzImage's xz payload into the ELF vmlinux (PVH direct boot, no decompressor)."""
    data = bzimage.read_bytes()
    start = data.find(b"\xfd7zXZ\x00")
    if start < 0:
        raise HarnessError(f"{bzimage}: no xz payload found")
    elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
    if not elf.startswith(b"\x7fELF"):
        raise HarnessError(f"{bzimage}: the xz payload is not an ELF image")
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(elf)
    tmp.replace(out)


class Cpio:
    """A minimal writer for the kernel's initramfs format (cpio 'newc')."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.ino = 1

    @staticmethod
    def _pad(n: int) -> bytes:
        return b"\0" * (-n % 4)

    def add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
        head = b"070701" + b"".join(b"%08x" % f for f in fields) + name.encode() + b"\0"
        self.parts += [head, self._pad(len(head)), data, self._pad(len(data))]
        self.ino += 1

    def dir(self, name: str) -> None:
        self.add(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.add(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self.add(name, stat.S_IFLNK | 0o777, target.encode())

    def bytes(self) -> bytes:
        self.add("TRAILER!!!", 0)
        return b"".join(self.parts)


INIT = r"""#!/bin/sh
# PID 1 of the test VM: mount the host's root, load IPVS, run the command, report its exit code.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /boot-modules); do insmod "/mods/$m" || echo "vm: insmod $m failed"; done
O="trans=virtio,version=9p2000.L,cache=loose,msize=512000"
mkdir -p /ctl /lower /ovl /newroot
die() { echo "vm: $*"; echo "vm: $*" > /dev/hvc0; poweroff -f; }
mount -t 9p -o "$O" ctl /ctl || die "cannot mount the control share"
. /ctl/env
mount -t 9p -o "$O,ro" hostroot /lower || die "cannot mount the host root"
mount -t tmpfs -o mode=0755 tmpfs /ovl
mkdir -p /ovl/upper /ovl/work
mount -t overlay -o lowerdir=/lower,upperdir=/ovl/upper,workdir=/ovl/work overlay /newroot \
    || die "cannot mount the overlay"
R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
mount -t tmpfs tmpfs $R/run
mount -t tmpfs tmpfs $R/tmp
mkdir -p "$R$VM_REPO" $R/run/vmctl /lib/modules $R/lib/modules
mount -t 9p -o "$O" repo "$R$VM_REPO" || die "cannot mount the checkout"
# The project's reference material beside the checkout (../shared), mounted on its own so that
# it stays visible when the checkout lives under /tmp (hidden by the tmpfs above), as in CI.
if [ -n "$VM_SHARED" ]; then
    mkdir -p "$R$VM_SHARED"
    mount -t 9p -o "$O,ro" shared "$R$VM_SHARED" || die "cannot mount $VM_SHARED"
fi
mount --bind /ctl $R/run/vmctl
mount --bind "$R$VM_MODULES" /lib/modules
mount --bind "$R$VM_MODULES" $R/lib/modules
ip link set lo up
hostname healthd-vm
chroot $R modprobe ip_vs || die "cannot load ip_vs"
for m in $VM_LOAD; do chroot $R modprobe -q "$m" || echo "vm: no module $m"; done
stty -F /dev/hvc0 -onlcr -echo 2>/dev/null
if [ "$VM_INIT" = systemd ]; then
    # systemd as PID 1 over the same root: it starts only what the test target pulls in (journald
    # and the test unit, which runs the command and powers off). /proc and /sys are its to mount.
    cp /ctl/healthd-vm.target /ctl/healthd-vm.service $R/etc/systemd/system/ || die "no test units"
    : > $R/etc/machine-id
    umount $R/proc $R/sys
    exec switch_root $R /lib/systemd/systemd --unit=healthd-vm.target --show-status=no
fi
chroot $R /bin/sh /run/vmctl/cmd.sh </dev/null >/dev/hvc0 2>&1
echo $? > /ctl/rc
sync
poweroff -f
"""

# The systemd mode's units (copied into the guest's /etc/systemd/system by /init). The system comes up
# to basic.target (journald, udev, tmpfiles, sysctl: what a service's default dependencies pull in
# anyway), then the command runs; multi-user.target and the host's services in it stay off.
VM_TARGET = """[Unit]
Description=healthd test VM: basic.target (as any service's default dependencies want) and the command
DefaultDependencies=no
Wants=basic.target healthd-vm.service
"""
VM_SERVICE = """[Unit]
Description=healthd test VM: the command under test
DefaultDependencies=no
After=basic.target

[Service]
Type=oneshot
TimeoutStartSec=infinity
StandardInput=null
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/hvc0
TTYReset=no
TTYVHangup=no
ExecStart=/bin/sh -c '/bin/sh /run/vmctl/cmd.sh; echo $$? > /run/vmctl/rc; sync; \
                     systemctl poweroff --force --force'
"""


def module_files(root: Path, kver: str, names: list[str]) -> list[Path]:
    """The .ko files for `names` and their dependencies, in load order (builtins left out)."""
    out = sh("modprobe", "-d", root, "-S", kver, "--show-depends", "-a", *names)
    files: list[Path] = []
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == "insmod":
            ko = Path(parts[1])
            if ko not in files:
                files.append(ko)
    return files


def _cache_key() -> str:
    """The boot files' format: rebuilt when the layout or the guest's /init changes."""
    return f"{CACHE_FORMAT}-{hashlib.sha256(INIT.encode()).hexdigest()[:12]}"


def build_initramfs(root: Path, kver: str, out: Path) -> None:
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        raise HarnessError("/bin/busybox is missing: apt-get install busybox-static")
    image = busybox.read_bytes()
    if b"/ld-linux" in image[:4096]:  # has a program interpreter: dynamically linked
        raise HarnessError("/bin/busybox is not static: apt-get install busybox-static")
    cpio = Cpio()
    for d in ("bin", "sbin", "dev", "proc", "sys", "mods", "lib", "etc", "tmp"):
        cpio.dir(d)
    cpio.add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    cpio.file("bin/busybox", image, 0o755)
    for applet in sh(busybox, "--list").split():
        if applet != "busybox":
            cpio.symlink(f"bin/{applet}", "busybox")
    cpio.symlink("sbin/modprobe", "../bin/busybox")  # the kernel runs it to autoload modules
    kos = module_files(root, kver, BOOT_MODULES)
    for ko in kos:
        cpio.file(f"mods/{ko.name}", ko.read_bytes())
    cpio.file("boot-modules", "\n".join(ko.name for ko in kos).encode() + b"\n")
    cpio.file("init", INIT.encode(), 0o755)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(cpio.bytes())
    tmp.replace(out)


def prepare() -> dict[str, str]:
    """Make sure the kernel, vmlinux and initramfs are in the cache; return their paths."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    meta_file = cache / "boot.json"
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if meta_file.exists():
            meta = json.loads(meta_file.read_text())
            if meta.get("format") == _cache_key() and all(Path(meta[k]).exists()
                                                         for k in ("vmlinux", "initramfs", "modules")):
                return meta
        for tool in ("qemu-system-x86_64", "apt-get", "dpkg", "depmod", "modprobe"):
            if not shutil.which(tool):
                raise HarnessError(f"{tool} is missing: apt-get install qemu-system-x86 busybox-static kmod")
        started = time.monotonic()
        root, kver = fetch_kernel(cache)
        vmlinux = cache / f"vmlinux-{kver}"
        extract_vmlinux(root / "boot" / f"vmlinuz-{kver}", vmlinux)
        initramfs = cache / f"initramfs-{kver}.cpio"
        build_initramfs(root, kver, initramfs)
        meta = {"format": _cache_key(), "kver": kver, "vmlinux": str(vmlinux), "initramfs": str(initramfs),
                "modules": str(root / "lib" / "modules")}
        meta_file.write_text(json.dumps(meta, indent=1))
        log(f"prepared kernel {kver} in {time.monotonic() - started:.1f} s")
        return meta


# ---------------------------------------------------------------- booting

def guest_script(cmd: list[str], env: dict[str, str]) -> str:
    venv_bin = Path(sys.executable).parent  # not resolved: the venv's bin, whatever python it links to
    path = f"{venv_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    base = {"PATH": path, "HOME": "/root", "LANG": "C.UTF-8", "HEALTHD_IN_VM": "1",
            "TERM": os.environ.get("TERM", "dumb") if sys.stdout.isatty() else "dumb"}
    if (venv_bin.parent / "pyvenv.cfg").exists():
        base["VIRTUAL_ENV"] = str(venv_bin.parent)
    base.update({k: v for k, v in os.environ.items() if k.startswith("HEALTHD_")})
    base.update(env)
    lines = [f"export {k}={shlex.quote(v)}" for k, v in sorted(base.items())]
    cd = f"cd {shlex.quote(str(Path.cwd()))} || exit 126"
    return "\n".join([*lines, cd, f"exec {shlex.join(cmd)}", ""])


def boot(meta: dict[str, str], cmd: list[str], env: dict[str, str], timeout: float, memory: int,
         cpu: str = "max", init: str = "busybox") -> int:
    cache = cache_dir()
    if not str(Path.cwd()).startswith(str(REPO)):
        raise HarnessError(f"run from inside the checkout {REPO}")
    with tempfile.TemporaryDirectory(prefix="run-", dir=cache) as ctl_dir:
        ctl = Path(ctl_dir)
        modules = Path(meta["modules"])
        (ctl / "env").write_text(
            f"VM_REPO={shlex.quote(str(REPO))}\nVM_MODULES={shlex.quote(str(modules))}\n"
            f"VM_LOAD={shlex.quote(' '.join(IPVS_MODULES[1:]))}\n"
            f"VM_SHARED={shlex.quote(str(SHARED) if SHARED.is_dir() else '')}\n"
            f"VM_INIT={shlex.quote(init)}\n")
        (ctl / "cmd.sh").write_text(guest_script(cmd, {"HEALTHD_VM_INIT": init, **env}))
        (ctl / "healthd-vm.target").write_text(VM_TARGET)
        (ctl / "healthd-vm.service").write_text(VM_SERVICE)
        console = ctl / "console.log"
        share = "security_model=none,multidevs=remap"
        qemu = [
            "qemu-system-x86_64", "-accel", "tcg", "-cpu", cpu, "-m", f"{memory}M", "-smp", "1",
            "-nodefaults", "-display", "none", "-no-reboot", "-no-user-config",
            "-kernel", meta["vmlinux"], "-initrd", meta["initramfs"],
            "-append", "console=ttyS0 quiet panic=-1",
            "-serial", f"file:{console}",
            "-fsdev", f"local,id=hostroot,path=/,readonly=on,{share}",
            "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
            "-fsdev", f"local,id=ctl,path={ctl},{share}",
            "-device", "virtio-9p-pci,fsdev=ctl,mount_tag=ctl",
            "-fsdev", f"local,id=repo,path={REPO},{share}",
            "-device", "virtio-9p-pci,fsdev=repo,mount_tag=repo",
            *(["-fsdev", f"local,id=shared,path={SHARED},readonly=on,{share}",
               "-device", "virtio-9p-pci,fsdev=shared,mount_tag=shared"] if SHARED.is_dir() else []),
            "-device", "virtio-serial-pci",
            "-chardev", "stdio,id=out,signal=off", "-device", "virtconsole,chardev=out",
        ]
        started = time.monotonic()
        sys.stdout.flush()
        proc = subprocess.Popen(qemu, stdin=subprocess.DEVNULL)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            log(f"timed out after {timeout:.0f} s; the VM was killed")
            return 124
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        rc_file = ctl / "rc"
        if not rc_file.exists():
            tail = console.read_text(errors="replace").splitlines()[-30:] if console.exists() else []
            log(f"the VM stopped without running the command (qemu exit {proc.returncode}); console tail:")
            for line in tail:
                print(f"  | {line}", file=sys.stderr)
            return 125
        log(f"VM run took {time.monotonic() - started:.1f} s")
        return int(rc_file.read_text().strip() or 125)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.vm.harness",
                                     description="Run a command in a QEMU VM whose kernel has IPVS.")
    parser.add_argument("--prepare", action="store_true", help="only fetch the kernel, build boot files")
    parser.add_argument("--timeout", type=float, default=1800, help="kill the VM after this many seconds")
    parser.add_argument("--memory", type=int, default=1024, help="guest memory in MiB")
    parser.add_argument("--cpu", default=os.environ.get("HEALTHD_VM_CPU", "max"), help="QEMU -cpu model")
    parser.add_argument("--systemd", action="store_true",
                        help="boot the host's systemd as PID 1 and run CMD as its test unit (tests/systemd)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="set a variable for the command")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="the command to run in the VM")
    args = parser.parse_args(argv)
    if not args.prepare and not args.cmd:
        parser.error("give a command to run, or --prepare")
    env = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--env wants NAME=VALUE, got {item!r}")
        env[name] = value
    if os.geteuid() != 0:
        log("needs root (apt-get download, 9p shares of /)")
        return 125
    try:
        meta = prepare()
        if args.prepare:
            log(f"kernel {meta['kver']} ready in {cache_dir()}")
            return 0
        return boot(meta, args.cmd, env, args.timeout, args.memory, args.cpu,
                    init="systemd" if args.systemd else "busybox")
    except HarnessError as e:
        log(str(e))
        return 125
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
