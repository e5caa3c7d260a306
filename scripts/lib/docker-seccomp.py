#!/usr/bin/env python3
"""Docker's default seccomp profile in OCI form, as Podman hands it to a runtime.

    docker-seccomp.py CONFIG.json SECCOMP.json > OUT.json

CONFIG.json is a bundle's config; SECCOMP.json is Docker's profile in moby's format (Podman's
/usr/share/containers/seccomp.json from containers-common). The output is CONFIG.json with
linux.seccomp set: the rules for this machine's architecture, kernel and the config's bounding
capabilities (the filtering moby and Podman do), and root.path made absolute so that the config
can live in another directory than its rootfs.
"""
import json
import os
import platform
import sys

config = json.load(open(sys.argv[1]))
src = json.load(open(sys.argv[2]))
oci_arch, go_arch = {"x86_64": ("SCMP_ARCH_X86_64", "amd64"),
                     "aarch64": ("SCMP_ARCH_AARCH64", "arm64")}[platform.machine()]
caps = set(config["process"]["capabilities"]["bounding"])
kernel = tuple(int(x) for x in platform.release().split("-")[0].split(".")[:2])
arches = [oci_arch] + [a for m in src["archMap"] if m["architecture"] == oci_arch
                       for a in m["subArchitectures"]]
rules = []
for s in src["syscalls"]:
    inc, exc = s.get("includes") or {}, s.get("excludes") or {}
    if inc.get("arches") and go_arch not in inc["arches"]:
        continue
    if not set(inc.get("caps") or []) <= caps:
        continue
    if inc.get("minKernel") and kernel < tuple(int(x) for x in inc["minKernel"].split(".")[:2]):
        continue
    if go_arch in (exc.get("arches") or []) or set(exc.get("caps") or []) & caps:
        continue
    r = {"names": s["names"], "action": s["action"]}
    if s.get("errnoRet") is not None:
        r["errnoRet"] = s["errnoRet"]
    if s.get("args"):
        r["args"] = s["args"]
    rules.append(r)
config["linux"]["seccomp"] = {"defaultAction": src["defaultAction"],
                              "defaultErrnoRet": src["defaultErrnoRet"],
                              "architectures": arches, "syscalls": rules}
config["root"]["path"] = os.path.join(os.path.dirname(os.path.abspath(sys.argv[1])), "rootfs")
json.dump(config, sys.stdout)
