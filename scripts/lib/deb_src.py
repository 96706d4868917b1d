#!/usr/bin/env python3
"""Writes a deb-src entry for the distribution's main archive (needed by `apt-get source`).

    python3 scripts/lib/deb_src.py CODENAME DST

Mirrors the machine's own deb entries whose suite is CODENAME or CODENAME-*: stanzas of
deb822 /etc/apt/sources.list.d/*.sources files (except DST itself) and lines of the one-line
/etc/apt/sources.list and /etc/apt/sources.list.d/*.list files, each as a deb822
`Types: deb-src` stanza. Without any, deb.debian.org's main component. Writes them to DST
(a .sources file), replacing it. Called by ensure_deb_src in scripts/install.sh.
"""
import glob, re, sys
codename, dst = sys.argv[1], sys.argv[2]
out = []
# deb822 files: copy stanzas of Types: deb whose Suites name the codename.
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    if path == dst:
        continue
    text = open(path).read()
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in fields.get("types", "").split():
            continue
        suites = fields.get("suites", "").split()
        if not any(s == codename or s.startswith(codename + "-") for s in suites):
            continue
        lines = [l for l in stanza.splitlines() if l.strip() and not l.startswith("#")]
        lines = [re.sub(r"^Types:.*", "Types: deb-src", l, flags=re.I) for l in lines]
        out.append("\n".join(lines))
# one-line format
for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        parts = line.split()
        if len(parts) < 3 or parts[0] != "deb":
            continue
        # deb [opts] uri suite comp...
        rest = parts[1:]
        opts = []
        if rest[0].startswith("["):
            while rest and not rest[0].endswith("]"):
                opts.append(rest.pop(0))
            opts.append(rest.pop(0))
        if len(rest) >= 2 and (rest[1] == codename or rest[1].startswith(codename + "-")):
            out.append("Types: deb-src\nURIs: %s\nSuites: %s\nComponents: %s" % (rest[0], rest[1], " ".join(rest[2:]) or "main"))
if not out:
    out.append("Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg" % codename)
open(dst, "w").write("\n\n".join(out) + "\n")
