"""Fetch the official IPS 2.0.0 package from the npm registry and check its integrity.

Usage: ``python tests/ips/fetch_ips_package.py`` (needs ``npm``). Writes
``tests/ips/hl7.fhir.uv.ips-2.0.0.tgz``; fails if the bytes differ from the registry's
published SHA-512 integrity value.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = "hl7.fhir.uv.ips@2.0.0"
TARBALL = "hl7.fhir.uv.ips-2.0.0.tgz"
#: ``npm view hl7.fhir.uv.ips@2.0.0 dist.integrity``
INTEGRITY = (
    "sha512-4PWToJ9b1FgXsm9DIvHiU6HO9Z5m75jxk0e0MXOmhFlf2m2slk/d6RoiSYIChKJlv"
    "mtJ7GbRftt7PphlwmZcbQ=="
)


def integrity(path: Path) -> str:
    """The npm-style integrity string of a file."""
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def main() -> int:
    target = Path(__file__).resolve().parent / TARBALL
    npm = shutil.which("npm")
    if npm is None:
        print("npm is not installed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([npm, "pack", PACKAGE, "--silent"], cwd=tmp, check=True)
        fetched = Path(tmp) / TARBALL
        if integrity(fetched) != INTEGRITY:
            print(f"{TARBALL}: integrity mismatch, not written", file=sys.stderr)
            return 1
        shutil.copyfile(fetched, target)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
