#!/usr/bin/env python3
"""Builds the small always-available fixture trees in tests/fixtures/ from the full captures in
$METAL_SHARED_DIR/fixtures/redfish (default ../../../shared relative to this crate).

Keeps what the client reads (root, systems, processors, memory, NICs, storage, managers, virtual media,
BIOS with a few attributes and their registry entries, accounts, events, update/task/session services),
drops everything else, trims big lists, and filters collection members to the kept files so the mini
trees stay consistent. Run it again whenever the selection changes; the output is committed.

Attribution: dell-poweredge-r750 and supermicro-sys-821ge are from the libredfish test mockups (MIT);
dmtf-public-rackmount1 is DMTF's Redfish-Mockup-Server public-rackmount1 (BSD-3-Clause).
"""
import json
import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CRATE = os.path.dirname(HERE)
SHARED = os.environ.get("METAL_SHARED_DIR", os.path.join(CRATE, "..", "..", "..", "shared"))
SRC = os.path.join(SHARED, "fixtures", "redfish")
OUT = os.path.join(CRATE, "tests", "fixtures")

KEEP = [
    r"^$", r"^Systems$", r"^Systems/[^/]+$",
    r"^Systems/[^/]+/(Processors|Memory|EthernetInterfaces|SimpleStorage|VirtualMedia)(/[^/]+)?$",
    r"^Systems/[^/]+/Storage(/[^/]+)?$",
    r"^Systems/[^/]+/Storage/[^/]+/(Drives|Volumes|Controllers)(/[^/]+)?$",
    r"^Systems/[^/]+/Bios$", r"^Systems/[^/]+/Bios/(Settings|SD|BiosRegistry)$",
    r"^Systems/[^/]+/ResetActionInfo$",
    r"^Chassis/[^/]*StorageBackplane/Drives(/[^/]+)?$",
    r"^Managers$", r"^Managers/[^/]+$",
    r"^Managers/[^/]+/(VirtualMedia|EthernetInterfaces)(/[^/]+)?$",
    r"^Managers/[^/]+/VirtualMedia/[^/]+/InsertMediaActionInfo$",
    r"^Managers/[^/]+/Oem/Dell/DellAttributes/[^/]+(/Settings)?$",
    r"^Managers/[^/]+/Oem/Supermicro/ResetActionInfo$",
    r"^AccountService$", r"^AccountService/Accounts(/[^/]+)?$",
    r"^EventService$", r"^EventService/Subscriptions(/[^/]+)?$",
    r"^UpdateService$", r"^UpdateService/SimpleUpdateActionInfo$", r"^UpdateService/FirmwareInventory$",
    r"^UpdateService/FirmwareInventory/(BIOS|BMC|Installed-25227-6\.00\.30\.00__iDRAC\.Embedded\.1-1|Installed-159-1\.8\.2__BIOS\.Setup\.1-1)$",
    r"^TaskService$", r"^TaskService/Tasks(/[^/]+)?$", r"^Chassis$", r"^Chassis/(System\.Embedded\.1|1|1U)$",
    r"^SessionService$", r"^SessionService/Sessions$",
    r"^Registries$", r"^Registries/(BiosAttributeRegistry[^/]*|ManagerAttributeRegistry)$",
]

BIOS_KEEP = 24  # attributes kept from the BIOS (plus their registry entries)
MANAGER_ATTRS = ["SysLog.1.SysLogEnable", "SysLog.1.Server1", "NTPConfigGroup.1.NTPEnable", "NTPConfigGroup.1.NTP1",
                 "SNMP.1.AgentEnable", "SNMP.1.AgentCommunity", "EmailAlert.1.Enable", "EmailAlert.1.Address",
                 "IPMILan.1.Enable", "WebServer.1.Timeout"]

TREES = {
    "dell-poweredge-r750": "redfish/v1",
    "supermicro-sys-821ge": "redfish/v1",
    "dmtf-public-rackmount1": "",
}


def rel_of(odata_id, prefix_len):
    p = odata_id.split("#")[0].rstrip("/")
    if p.startswith("/redfish/v1"):
        p = p[len("/redfish/v1"):]
    return p.lstrip("/")


def main():
    if not os.path.isdir(SRC):
        sys.exit(f"no shared trees at {SRC}")
    for tree, sub in TREES.items():
        base = os.path.join(SRC, tree, sub) if sub else os.path.join(SRC, tree)
        out_base = os.path.join(OUT, tree, sub) if sub else os.path.join(OUT, tree)
        if os.path.isdir(os.path.join(OUT, tree)):
            shutil.rmtree(os.path.join(OUT, tree))
        kept = {}
        for root, _dirs, files in os.walk(base):
            if "index.json" not in files:
                continue
            rel = os.path.relpath(root, base)
            rel = "" if rel == "." else rel
            if any(re.match(p, rel) for p in KEEP):
                with open(os.path.join(root, "index.json")) as f:
                    kept[rel] = json.load(f)
        bios_names = set()
        for rel, doc in kept.items():
            if re.match(r"^Systems/[^/]+/Bios$", rel) and isinstance(doc.get("Attributes"), dict):
                names = sorted(doc["Attributes"])[:BIOS_KEEP]
                # keep attributes the tests write
                for extra in ("BootMode", "ProcVirtualization", "SysProfile", "LogicalProc", "ProcTurboMode"):
                    if extra in doc["Attributes"]:
                        names.append(extra)
                doc["Attributes"] = {k: doc["Attributes"][k] for k in sorted(set(names))}
                bios_names |= set(doc["Attributes"])
        for rel, doc in kept.items():
            if re.match(r"^Systems/[^/]+/Bios/(Settings|SD)$", rel) and isinstance(doc.get("Attributes"), dict):
                doc["Attributes"] = {k: v for k, v in doc["Attributes"].items() if k in bios_names}
            if rel.endswith("BiosRegistry") or (rel.startswith("Registries/") and "RegistryEntries" in doc):
                attrs = doc.get("RegistryEntries", {}).get("Attributes", [])
                doc["RegistryEntries"] = {"Attributes": [a for a in attrs if a.get("AttributeName") in bios_names]}
            if "/Oem/Dell/DellAttributes/" in rel and isinstance(doc.get("Attributes"), dict):
                doc["Attributes"] = {k: v for k, v in doc["Attributes"].items() if k in MANAGER_ATTRS}
            if rel.startswith("Managers/") and rel.count("/") == 1:
                for k in ("TimeZoneName@Redfish.AllowableValues",):
                    doc.pop(k, None)
        # Supermicro BIOS registry lives in a file below Registries; bring it if referenced.
        for rel, doc in list(kept.items()):
            if rel.startswith("Registries/") and "Location" in doc:
                for loc in doc["Location"]:
                    uri = loc.get("Uri", "")
                    r = rel_of(uri, 0)
                    if r in kept:
                        continue
                    src = os.path.join(base, r)
                    for cand in (os.path.join(src, "index.json"), src):
                        if os.path.isfile(cand):
                            with open(cand) as f:
                                reg = json.load(f)
                            attrs = reg.get("RegistryEntries", {}).get("Attributes", [])
                            reg["RegistryEntries"] = {"Attributes": [a for a in attrs if a.get("AttributeName") in bios_names]}
                            kept[r if cand.endswith("index.json") else r + "@file"] = reg
                            break
        # Filter collection members to kept resources.
        for rel, doc in kept.items():
            if isinstance(doc.get("Members"), list):
                members = [m for m in doc["Members"] if isinstance(m, dict) and rel_of(m.get("@odata.id", ""), 0) in kept]
                doc["Members"] = members
                if "Members@odata.count" in doc:
                    doc["Members@odata.count"] = len(members)
        for rel, doc in kept.items():
            if rel.endswith("@file"):
                path = os.path.join(out_base, rel[: -len("@file")])
            else:
                path = os.path.join(out_base, rel, "index.json")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                json.dump(doc, f, indent=1, sort_keys=False)
                f.write("\n")
        print(f"{tree}: {len(kept)} resources")
    for lic in ("LICENSE.libredfish-mockups", "LICENSE.dmtf-mockups"):
        shutil.copy(os.path.join(SRC, lic), os.path.join(OUT, lic))


if __name__ == "__main__":
    main()
