"""Regenerate the shipped territory data from the pinned Etalab npm tarball.

Reads `package/data/*.json` of `@etalab/decoupage-administratif@6.0.0` with `tarfile` (no Node
at run time; npm is only used to fetch the tarball when `--tarball` is not given), checks the
tarball's sha256, and writes into `services/common/data/`:

- `territories.json`: every ranked territory (format in docs/territories.md), one per line;
- `CREDITS.txt`: the source and licence of that data;
- `territories.sha256`: checksums of both, in `sha256sum -c` format.

The output is deterministic: rerunning on the same tarball gives byte-identical files.

    python scripts/regenerate_territories.py [--tarball PATH] [--output-dir DIR] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Final

import orjson

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a plain script, the repository is not on sys.path
    sys.path.insert(0, str(REPO_ROOT))

from services.common.contracts import CATEGORY_IDS  # noqa: E402
from services.common.territories import (  # noqa: E402
    CATEGORY_KINDS,
    CREDIT,
    DATA_FORMAT,
    EPCI_CATEGORY_BY_TYPE,
    KIND_DEPARTEMENT,
    KIND_EPCI,
    KIND_REGION,
    POPULATION_OVERRIDES,
    PopulationOverride,
    commune_category,
    territory_id,
)

PACKAGE_NAME: Final = "@etalab/decoupage-administratif"
PACKAGE_VERSION: Final = "6.0.0"
PACKAGE_SPEC: Final = f"{PACKAGE_NAME}@{PACKAGE_VERSION}"
TARBALL_SHA256: Final = "c189ffd5b33fe40c2f19e1a923ce557f190622f39228745d3195d746dfe00c4a"

DATA_DIR: Final = REPO_ROOT / "services" / "common" / "data"
TERRITORIES_FILE: Final = "territories.json"
CREDITS_FILE: Final = "CREDITS.txt"
CHECKSUM_FILE: Final = "territories.sha256"
SOURCE_FILES: Final = ("regions", "departements", "communes", "epci")

# Zones of the 18 régions and 101 départements; "com" (the 8 overseas collectivities) is left out.
RANKED_ZONES: Final = frozenset({"metro", "drom"})
ALL_ZONES: Final = RANKED_ZONES | {"com"}


class RegenerationError(Exception):
    """The tarball or its data is not what this script was written for."""


def fetch_tarball(directory: Path) -> Path:
    """Download the pinned tarball with `npm pack` into `directory` and return its path."""
    npm = shutil.which("npm")
    if npm is None:
        raise RegenerationError(
            f"npm not found: install it or pass --tarball (from `npm pack {PACKAGE_SPEC}`)"
        )
    subprocess.run(
        [npm, "pack", PACKAGE_SPEC, "--silent"],
        cwd=directory,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    tarballs = sorted(directory.glob("*.tgz"))
    if len(tarballs) != 1:
        raise RegenerationError(
            f"`npm pack {PACKAGE_SPEC}` produced {len(tarballs)} tarballs, expected one"
        )
    return tarballs[0]


def verify_tarball(tarball: bytes) -> None:
    """Refuse any tarball whose sha256 is not the pinned one."""
    actual = hashlib.sha256(tarball).hexdigest()
    if actual != TARBALL_SHA256:
        raise RegenerationError(
            f"refusing tarball: sha256 is {actual}, expected {TARBALL_SHA256} "
            f"({PACKAGE_SPEC} as published on npm). Data was not regenerated."
        )


def read_sources(tarball: bytes) -> dict[str, Any]:
    """Return the decoded `package/data/{regions,departements,communes,epci}.json`."""
    sources: dict[str, Any] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for name in SOURCE_FILES:
            member = archive.extractfile(f"package/data/{name}.json")
            if member is None:
                raise RegenerationError(f"package/data/{name}.json is not a regular file")
            sources[name] = orjson.loads(member.read())
    return sources


def _ranked(items: list[dict[str, Any]], what: str) -> list[dict[str, Any]]:
    unknown = {item["zone"] for item in items} - ALL_ZONES
    if unknown:
        raise RegenerationError(f"{what}: unknown zone(s) {sorted(unknown)}")
    return [item for item in items if item["zone"] in RANKED_ZONES]


def _apply_override(
    override: PopulationOverride,
    populations: dict[str, int],
    communes_of: dict[str, list[str]],
    communes: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Apply one population override in place and return its record for the data file."""
    for tid in (override.territory_id, override.excluded_members_of):
        if tid not in communes_of:
            raise RegenerationError(f"population override: {tid} is not an aggregate territory")
    excluded = set(communes_of[override.territory_id]) & set(
        communes_of[override.excluded_members_of]
    )
    if not excluded:
        raise RegenerationError(
            f"population override of {override.territory_id}: nothing to exclude"
        )
    cog_population = populations[override.territory_id]
    populations[override.territory_id] -= sum(communes[c]["population"] for c in excluded)
    return {
        "id": override.territory_id,
        "excluded_members_of": override.excluded_members_of,
        "communes_excluded": len(excluded),
        "population_cog": cog_population,
        "population": populations[override.territory_id],
    }


def derive(sources: dict[str, Any]) -> dict[str, Any]:
    """Derive the `territories.json` document from the Etalab sources."""
    regions = {r["code"]: r for r in _ranked(sources["regions"], "regions.json")}
    departements = {d["code"]: d for d in _ranked(sources["departements"], "departements.json")}
    communes = {
        c["code"]: c
        for c in sources["communes"]
        if c["type"] == "commune-actuelle" and c["departement"] in departements
    }
    for code, dep in departements.items():
        if dep["region"] not in regions:
            raise RegenerationError(f"département {code} is in unknown région {dep['region']}")
    for code, commune in communes.items():
        if commune["region"] != departements[commune["departement"]]["region"]:
            raise RegenerationError(f"commune {code}: région differs from its département's")
        if not isinstance(commune.get("population"), int):
            raise RegenerationError(f"commune {code} has no integer population")

    epcis: dict[str, dict[str, Any]] = {}
    members: dict[str, list[str]] = {}
    epci_of: dict[str, str] = {}
    for epci in sources["epci"]:
        if epci["type"] not in EPCI_CATEGORY_BY_TYPE:
            raise RegenerationError(f"EPCI {epci['code']}: unknown type {epci['type']!r}")
        epcis[epci["code"]] = epci
        members[epci["code"]] = [m["code"] for m in epci["membres"]]
        for code in members[epci["code"]]:
            if code not in communes:
                raise RegenerationError(
                    f"EPCI {epci['code']}: member {code} is not a ranked commune"
                )
            if code in epci_of:
                raise RegenerationError(
                    f"commune {code} is in EPCIs {epci_of[code]} and {epci['code']}"
                )
            epci_of[code] = epci["code"]

    # Member communes of every aggregate territory, by id.
    communes_of: dict[str, list[str]] = defaultdict(list)
    for code, commune in communes.items():
        communes_of[territory_id(KIND_DEPARTEMENT, commune["departement"])].append(code)
        communes_of[territory_id(KIND_REGION, commune["region"])].append(code)
    for code, codes in members.items():
        communes_of[territory_id(KIND_EPCI, code)] = codes
    populations = {
        tid: sum(communes[c]["population"] for c in codes) for tid, codes in communes_of.items()
    }
    overrides = [
        _apply_override(override, populations, communes_of, communes)
        for override in POPULATION_OVERRIDES
    ]

    def membership(codes: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return (
            tuple(sorted({communes[c]["region"] for c in codes})),
            tuple(sorted({communes[c]["departement"] for c in codes})),
        )

    # category -> rows of (code, name, population, (régions, départements))
    rows: dict[str, list[tuple[str, str, int, tuple[tuple[str, ...], tuple[str, ...]]]]] = {
        category: [] for category in CATEGORY_IDS
    }
    for code, region in regions.items():
        deps = tuple(sorted(d for d, dep in departements.items() if dep["region"] == code))
        population = populations[territory_id(KIND_REGION, code)]
        rows["regions"].append((code, region["nom"], population, ((code,), deps)))
    for code, dep in departements.items():
        population = populations[territory_id(KIND_DEPARTEMENT, code)]
        rows["departements"].append((code, dep["nom"], population, ((dep["region"],), (code,))))
    for code, epci in epcis.items():
        population = populations[territory_id(KIND_EPCI, code)]
        rows[EPCI_CATEGORY_BY_TYPE[epci["type"]]].append(
            (code, epci["nom"], population, membership(members[code]))
        )
    for code, commune in communes.items():
        population = commune["population"]
        rows[commune_category(population)].append(
            (code, commune["nom"], population, ((commune["region"],), (commune["departement"],)))
        )

    memberships = sorted({row[3] for category_rows in rows.values() for row in category_rows})
    membership_index = {m: i for i, m in enumerate(memberships)}
    return {
        "format": DATA_FORMAT,
        "source": {
            "package": PACKAGE_NAME,
            "version": PACKAGE_VERSION,
            "tarball_sha256": TARBALL_SHA256,
        },
        "credit": CREDIT,
        "overrides": overrides,
        "memberships": [[list(regs), list(deps)] for regs, deps in memberships],
        "categories": [
            {
                "id": category,
                "kind": CATEGORY_KINDS[category],
                "territories": [
                    [code, name, pop, membership_index[member_of]]
                    for code, name, pop, member_of in sorted(rows[category])
                ],
            }
            for category in CATEGORY_IDS
        ],
    }


def render(document: dict[str, Any]) -> bytes:
    """Serialise the document as JSON with one membership or territory per line (diffable)."""
    dumps = orjson.dumps
    lines = [b"{"]
    lines += [
        dumps(key) + b":" + dumps(document[key]) + b","
        for key in ("format", "source", "credit", "overrides")
    ]
    lines.append(b'"memberships":[')
    lines.append(b",\n".join(dumps(m) for m in document["memberships"]))
    lines.append(b"],")
    lines.append(b'"categories":[')
    blocks = [
        b'{"id":'
        + dumps(block["id"])
        + b',"kind":'
        + dumps(block["kind"])
        + b',"territories":[\n'
        + b",\n".join(dumps(row) for row in block["territories"])
        + b"\n]}"
        for block in document["categories"]
    ]
    lines.append(b",\n".join(blocks))
    lines.append(b"]")
    lines.append(b"}")
    text = b"\n".join(lines) + b"\n"
    if orjson.loads(text) != document:
        raise RegenerationError("rendered territories.json does not round-trip")
    return text


def render_credits() -> bytes:
    """Return CREDITS.txt: where the shipped data comes from and under which licence."""
    return (
        f"{TERRITORIES_FILE} is derived from the npm package {PACKAGE_SPEC}\n"
        f"(tarball sha256 {TARBALL_SHA256}),\n"
        "https://github.com/datagouv/decoupage-administratif\n"
        "Data: Licence Ouverte / Open Licence (Etalab). Package code: MIT.\n"
        "\n"
        f"{CREDIT}\n"
        "\n"
        "Regenerate with: python scripts/regenerate_territories.py (see docs/territories.md).\n"
    ).encode()


def render_checksums(files: dict[str, bytes]) -> bytes:
    """Return `sha256sum -c` lines for these files, sorted by name."""
    return b"".join(
        f"{hashlib.sha256(content).hexdigest()}  {name}\n".encode()
        for name, content in sorted(files.items())
    )


def build(tarball: bytes) -> dict[str, bytes]:
    """Return every shipped file (name -> content) derived from the pinned tarball."""
    verify_tarball(tarball)
    files = {
        TERRITORIES_FILE: render(derive(read_sources(tarball))),
        CREDITS_FILE: render_credits(),
    }
    files[CHECKSUM_FILE] = render_checksums(files)
    return files


def verify_checksums(data_dir: Path = DATA_DIR) -> list[str]:
    """Return the problems found checking `data_dir` against its checksum file (empty if none)."""
    checksum_path = data_dir / CHECKSUM_FILE
    if not checksum_path.is_file():
        return [f"{checksum_path} is missing"]
    problems = []
    listed = set()
    for line in checksum_path.read_text().splitlines():
        digest, _, name = line.partition("  ")
        listed.add(name)
        path = data_dir / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{name}: sha256 differs from {CHECKSUM_FILE}")
    for name in (TERRITORIES_FILE, CREDITS_FILE):
        if name not in listed:
            problems.append(f"{name}: not listed in {CHECKSUM_FILE}")
    return problems


def _summary(territories: bytes) -> str:
    document = orjson.loads(territories)
    counts = ", ".join(f"{b['id']} {len(b['territories'])}" for b in document["categories"])
    return f"{sum(len(b['territories']) for b in document['categories'])} territories ({counts})"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tarball",
        type=Path,
        help=f"the `npm pack {PACKAGE_SPEC}` tarball (default: run npm pack)",
    )
    parser.add_argument(
        "--output-dir", type=Path, default=DATA_DIR, help="where to write (default: %(default)s)"
    )
    parser.add_argument(
        "--check", action="store_true", help="compare with the files in --output-dir, write nothing"
    )
    args = parser.parse_args(argv)
    try:
        if args.tarball is not None:
            files = build(args.tarball.read_bytes())
        else:
            with tempfile.TemporaryDirectory() as tmp:
                files = build(fetch_tarball(Path(tmp)).read_bytes())
    except (RegenerationError, OSError, subprocess.CalledProcessError, tarfile.TarError) as error:
        print(f"regenerate_territories: {error}", file=sys.stderr)
        return 1
    out: Path = args.output_dir
    if args.check:
        stale = [
            name
            for name, content in files.items()
            if not (out / name).is_file() or (out / name).read_bytes() != content
        ]
        for name in stale:
            print(f"differs: {out / name}", file=sys.stderr)
        print("up to date" if not stale else f"{len(stale)} file(s) differ; rerun without --check")
        return 1 if stale else 0
    out.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (out / name).write_bytes(content)
    print(f"wrote {', '.join(sorted(files))} to {out}: {_summary(files[TERRITORIES_FILE])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
